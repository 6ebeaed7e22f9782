"""`fakestudio encounter`: two people from two LoRAs in one labelled picture."""

from __future__ import annotations

import click

from fakestudio.commands.options import render_options, tsa_option
from fakestudio.commands.registry import publish_options
from fakestudio.extras import require


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
    "--detail",
    type=float,
    default=None,
    metavar="STRENGTH",
    help="Redraw each person at portrait size with their own LoRA (ADetailer's idea), "
    "image-to-image at this strength, 0 to below 1; 0: no detail pass. Default: the base's "
    "(0.8 on world), else 0.",
)
@click.option(
    "--merge",
    is_flag=True,
    help="Naive weighted merge of both LoRAs (what A1111 does), for comparison.",
)
@render_options
@publish_options
@tsa_option
def encounter(
    persons,
    scene,
    layout,
    feather,
    context,
    detail,
    merge,
    as_json,
    publish_url=None,
    registry_token=None,
    tsa=None,
    **render,
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
    require("studio", "encounter")
    from fakestudio.encounter import EncounterConfig, check_config, parse_context, parse_person
    from fakestudio.encounter import encounter as run
    from fakestudio.progress import step_progress

    cfg = EncounterConfig(
        persons=[parse_person(p) for p in persons],
        scene=scene,
        layout=layout,
        feather=feather,
        context=parse_context(context),
        detail=detail,
        merge=merge,
        **render,
    )
    check_config(cfg)
    from fakestudio.commands.registry import publish_written, resolve_publish
    from fakestudio.label.manifest import time_stamping

    publish_url, registry_token = resolve_publish(publish_url, registry_token)
    with (
        time_stamping(tsa),
        step_progress("composing the encounter", quiet=as_json) as on_step,
    ):
        written = run(cfg, on_step=on_step)
    from fakestudio.commands import echo_written

    echo_written(written, as_json, publish_written(written, publish_url, registry_token))
