"""`fakestudio encounter`: two people from two LoRAs in one labelled picture."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--person",
    "persons",
    multiple=True,
    required=True,
    metavar="LORA[:TRIGGER]",
    help="A person's LoRA, twice. The trigger and class word come from our LoRA header; "
    "give :TRIGGER for LoRAs from elsewhere (or none at all).",
)
@click.option(
    "--scene",
    required=True,
    help='The shared scene, e.g. "shaking hands at a tech conference, photo".',
)
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), default=Path("out"), show_default=True
)
@click.option(
    "--layout",
    default="left-right",
    show_default=True,
    help="left-right, right-left, boxes 'x0,y0,x1,y1;x0,y0,x1,y1' (fractions), "
    "or a mask image (red = first person, blue = second, black = background).",
)
@click.option(
    "--feather",
    type=float,
    default=0.04,
    show_default=True,
    help="Softness of the region edges, as a fraction of the width.",
)
@click.option(
    "--context",
    default=None,
    metavar="FRACTION|full",
    help="How far past its region (and its feathered edge) each region's pass sees, as a "
    "fraction of the picture [default: 0]; 'full' runs every region on the whole picture "
    "(about 3x the work of a plain generation).",
)
@click.option(
    "--merge",
    is_flag=True,
    help="Naive weighted merge of both LoRAs (what A1111 does), for comparison.",
)
@click.option("-n", "--num", "n", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--negative", default="")
@click.option("--steps", type=int, default=20, show_default=True)
@click.option("--guidance", type=float, default=7.0, show_default=True)
@click.option("--width", type=int, default=None)
@click.option("--height", type=int, default=None)
@click.option("--scheduler", default="euler", show_default=True)
@click.option(
    "--base",
    default="tiny",
    show_default=True,
    help="As for generate: tiny, a diffusers folder, a .safetensors file.",
)
@click.option("--config", type=click.Path(path_type=Path), default=None)
@click.option("--tokenizer", type=click.Path(path_type=Path), default=None)
@click.option(
    "--format", "fmt", type=click.Choice(["png", "jpeg", "webp"]), default="png", show_default=True
)
@click.option("--badge", is_flag=True, help="Also stamp a visible 'AI-generated' badge.")
@click.option(
    "--record-prompt", is_flag=True, help="Put the scene prompt into the manifest and metadata."
)
@click.option("--device", default=None)
@click.option("--json", "as_json", is_flag=True)
def encounter(
    persons,
    scene,
    out,
    layout,
    feather,
    context,
    merge,
    n,
    seed,
    negative,
    steps,
    guidance,
    width,
    height,
    scheduler,
    base,
    config,
    tokenizer,
    fmt,
    badge,
    record_prompt,
    device,
    as_json,
):
    """Generate a fictitious encounter of two people, each from their own LoRA.

    Each person's LoRA and prompt act only in their own region; the background has neither
    (regional composition: each region's pass runs on its own tile of the picture, both people
    in one batched UNet call per step). The manifest lists both LoRAs and the layout.
    Likeness and publicity laws apply to whoever makes and shares this.

    \b
    fakestudio encounter --person ben0a.safetensors --person celeb.safetensors \\
        --scene "shaking hands at a tech conference, photo" --out out/
    """
    from fakestudio.encounter import EncounterConfig, check_config, parse_context, parse_person
    from fakestudio.encounter import encounter as run
    from fakestudio.progress import step_progress

    cfg = EncounterConfig(
        persons=[parse_person(p) for p in persons],
        scene=scene,
        out=out,
        negative=negative,
        n=n,
        seed=seed,
        steps=steps,
        guidance=guidance,
        width=width,
        height=height,
        scheduler=scheduler,
        base=base,
        layout=layout,
        feather=feather,
        context=parse_context(context),
        merge=merge,
        fmt=fmt,
        badge=badge,
        record_prompt=record_prompt,
        device=device,
        config=config,
        tokenizer=tokenizer,
    )
    check_config(cfg)
    with step_progress("composing the encounter", quiet=as_json) as on_step:
        written = run(cfg, on_step=on_step)
    from fakestudio.commands import echo_written

    echo_written(written, as_json)
