"""`fakestudio generate`: labelled images from a prompt."""

from __future__ import annotations

from pathlib import Path

import click

from fakestudio.commands.options import render_options, tsa_option
from fakestudio.commands.registry import publish_options
from fakestudio.extras import require


@click.command()
@click.argument("prompt")
@click.option(
    "--lora", "loras", multiple=True, metavar="FILE[:WEIGHT]", help="A LoRA to apply; repeatable."
)
@click.option(
    "--lora-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where <lora:name:weight> tags in the prompt are looked up.",
)
@render_options
@publish_options
@tsa_option
def generate(
    prompt, loras, lora_dir, as_json, publish_url=None, registry_token=None, tsa=None, **render
):
    """Generate labelled images from PROMPT.

    \b
    fakestudio generate "a photo of ben0a at a conference" --out out/ --seed 7 -n 4
    fakestudio generate "portrait <lora:ben0a:0.8>" --lora-dir loras/ --base ./sd15
    """
    require("studio", "generate")
    from fakestudio.commands import echo_written
    from fakestudio.commands.registry import publish_written, resolve_publish
    from fakestudio.generate import GenerateConfig, check_config
    from fakestudio.generate import generate as run
    from fakestudio.label.manifest import time_stamping
    from fakestudio.lora import parse_lora_arg
    from fakestudio.progress import step_progress

    cfg = GenerateConfig(
        prompt=prompt,
        loras=[parse_lora_arg(v) for v in loras],
        lora_dir=lora_dir,
        **render,
    )
    check_config(cfg)
    publish_url, registry_token = resolve_publish(publish_url, registry_token)
    n = cfg.n
    with (
        time_stamping(tsa),
        step_progress(f"generating {n} image{'s' if n > 1 else ''}", quiet=as_json) as on_step,
    ):
        written = run(cfg, on_step=on_step)
    published = publish_written(written, publish_url, registry_token)
    echo_written(written, as_json, published)
