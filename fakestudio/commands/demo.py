"""`fakestudio demo`: the whole story on the embedded model, from nothing, in minutes."""

from __future__ import annotations

from pathlib import Path

import click

from fakestudio.commands.options import tsa_option
from fakestudio.extras import require


@click.command()
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True
)
@click.option(
    "--samples",
    type=click.Path(path_type=Path),
    default=None,
    help="A folder with one sub-folder of photos per person (default: the shipped samples/).",
)
@click.option(
    "--people",
    nargs=2,
    default=("ad4x", "b0bz"),
    show_default=True,
    help="The two sub-folders of --samples; their names are the trigger words.",
)
@click.option(
    "--consent",
    default=None,
    help="Consent statement for both datasets (required with your own photos).",
)
@click.option(
    "--base",
    default=None,
    help="As for generate ('world' by default, or $FAKESTUDIO_BASE): run the story on real weights.",
)
@click.option(
    "--train-steps", type=int, default=None, help="LoRA steps per person [80 on tiny, else 300]."
)
@click.option(
    "--steps",
    "gen_steps",
    type=int,
    default=20,
    show_default=True,
    help="Denoising steps of the encounter.",
)
@click.option(
    "--size", type=int, default=None, help="Encounter size (default 512 on tiny, native otherwise)."
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--device", default=None)
@click.option("--open", "open_", is_flag=True, help="Open the talk page in a browser.")
@tsa_option
def demo(
    out, samples, people, consent, base, train_steps, gen_steps, size, seed, device, open_, tsa=None
):
    """Prepare two datasets, train two LoRAs, make their encounter, label it, verify it,
    simulate a social-media upload, verify again, compare with a photo, and write an HTML
    talk page: real versus fake, what each check found, and why not to trust your eyes."""
    require("studio", "demo")
    from fakestudio.demo import DEMO_CONSENT, DemoConfig, run_demo
    from fakestudio.errors import UserError

    if samples is not None and consent is None:
        raise UserError("--consent is required with your own photos: say who agreed, and to what")
    cfg = DemoConfig(
        out=out,
        samples=samples,
        people=tuple(people),
        consent=consent or DEMO_CONSENT,
        base=base,
        train_steps=train_steps,
        gen_steps=gen_steps,
        size=size,
        seed=seed,
        open=open_,
        device=device,
    )
    from fakestudio.label.manifest import time_stamping

    with time_stamping(tsa):
        result = run_demo(cfg, say=lambda m: click.echo(m, err=True))
    click.echo(str(result.talk_page))
