"""`fakestudio label IMG... --out DIR`: labelled copies of pictures other generators made."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fakestudio.commands.options import tsa_option
from fakestudio.commands.registry import publish_options


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the labelled copies (not the originals' folder; created if missing).",
)
@click.option(
    "--generator",
    default=None,
    metavar="NAME",
    help="The generator that made the images, used when their metadata names none "
    "(e.g. 'Midjourney'). Metadata that names one wins.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "jpeg", "webp"]),
    default=None,
    help="Format of the copies. Default: the original's (PNG for other formats).",
)
@click.option("--badge", is_flag=True, help="Also stamp a visible 'AI-generated' badge.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@publish_options
@tsa_option
def label(
    images, out, generator, fmt, badge, as_json, publish_url=None, registry_token=None, tsa=None
):
    """Write labelled copies of AI images made elsewhere (Automatic1111, ComfyUI, any).

    \b
    fakestudio label outputs/*.png --out labelled/
    fakestudio label render.jpg --out labelled/ --generator "Midjourney v6"

    \b
    Each copy carries fakestudio's invisible watermark, IPTC DigitalSourceType
    trainedAlgorithmicMedia in XMP, a signed C2PA manifest (AI-generated, the generator named
    from the image's own metadata or --generator, the original as an ingredient when it has
    Content Credentials of its own) and a row in your output ledger, so `fakestudio verify`
    reads it as labelled and can trace stripped copies. The originals are only read. The
    copies keep the pixels and colour profile, not the metadata (prompts and workflows can be
    private): names of files and models only, never paths, go into the manifest.

    \b
    Every input is checked before anything is written. Exit codes: 0 written; 2 bad input
    (a missing file, not an image, an animation, under 256x256 pixels, no generator known,
    --out being the originals' folder, two inputs with one output name, an unwritable folder,
    a --tsa that gives no time-stamp): one line, nothing written.
    """
    from fakestudio.commands import echo_written
    from fakestudio.commands.registry import publish_written, resolve_publish
    from fakestudio.label.copies import CopyConfig, label_copies
    from fakestudio.label.manifest import time_stamping
    from fakestudio.progress import step_progress

    cfg = CopyConfig(out=out, generator=generator, fmt=fmt, badge=badge)
    publish_url, registry_token = resolve_publish(publish_url, registry_token)
    n = len(images)
    with (
        time_stamping(tsa),
        step_progress(
            f"labelling {n} image{'s' if n > 1 else ''}", quiet=as_json, unit="images", after=1.0
        ) as on_done,
    ):
        copies = label_copies(list(images), cfg, on_done=on_done)
    published = publish_written([c.written for c in copies], publish_url, registry_token)
    if as_json:
        records = [c.to_dict() for c in copies]
        for rec, pub in zip(records, published, strict=False):  # same order as the copies
            rec["published"] = {"registry": pub["registry"], "manifestId": pub["manifestId"]}
        click.echo(json.dumps(records, indent=2))
    else:
        echo_written([c.written for c in copies], False)
