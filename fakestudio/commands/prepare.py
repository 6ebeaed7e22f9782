"""`fakestudio prepare`: a folder of photos -> a training dataset (docs/dataset.md)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import click

from fakestudio.extras import require

PROGRESS_FROM = 8  # photos; fewer finish before a bar would be worth drawing


@click.command()
@click.argument("photos", type=click.Path(path_type=Path))
@click.option("--token", required=True, help="The rare trigger word, e.g. ben0a.")
@click.option(
    "--class-word",
    default="",
    help="What the subject is: man, woman, dog, style ... (captions read 'photo of TOKEN CLASS').",
)
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), required=True, help="The dataset folder."
)
@click.option("--resolution", type=int, default=512, show_default=True, help="Multiple of 64.")
@click.option(
    "--consent",
    default=None,
    help="Who agreed to be trained on, in words. Required for a person (--person).",
)
@click.option(
    "--person/--no-person",
    default=True,
    show_default=True,
    help="The photos show a person (consent required); --no-person for objects and styles.",
)
@click.option(
    "--dedupe-bits",
    type=int,
    default=6,
    show_default=True,
    help="Perceptual-hash distance (of 64 bits) up to which two photos count as duplicates.",
)
@click.option(
    "--min-side",
    type=int,
    default=None,
    help="Skip photos whose shorter side is under this. Default: resolution/2.",
)
@click.option(
    "--crop",
    type=click.Choice(["face", "center"]),
    default="face",
    show_default=True,
    help="Crop around the largest face where one is found, or always the centre.",
)
@click.option(
    "--base",
    default=None,
    help="Base model whose tokenizer checks the token: 'world' (default, or $FAKESTUDIO_BASE), "
    "'tiny', a diffusers folder, a hub id.",
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    default=None,
    help="A CLIP tokenizer folder for the token check (wins over --base).",
)
@click.option("--force", is_flag=True, help="Replace an existing dataset at --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def prepare(
    photos,
    token,
    class_word,
    out,
    resolution,
    consent,
    person,
    dedupe_bits,
    min_side,
    crop,
    base,
    tokenizer,
    force,
    as_json,
):
    """Turn a folder of PHOTOS into a training dataset at --out.

    \b
    fakestudio prepare photos/ --token ben0a --class-word man --out dataset/ \\
        --consent "I am the person in these photos"

    \b
    Reads JPEG, PNG, WebP, TIFF ... recursively (EXIF orientation applied); keeps a caption from
    a same-named .txt beside a photo or writes "photo of TOKEN CLASS"; drops near-duplicates;
    crops around the face (else the centre) to aspect-ratio buckets; skips bad files with a
    reason. Writes dataset.json (hashes, never your file names) and images/NNNN.png + .txt.
    Exit codes: 0 done; 2 bad input (nothing is written); 130 interrupted (nothing is written).
    """
    require("studio", "prepare")
    from fakestudio.dataset import prepare_dataset

    with _progress(quiet=as_json) as on_progress:
        result = prepare_dataset(
            photos,
            out,
            token=token,
            class_word=class_word,
            resolution=resolution,
            consent=consent,
            person=person,
            dedupe_bits=dedupe_bits,
            min_side=min_side,
            crop=crop,
            base=base,
            tokenizer=tokenizer,
            force=force,
            on_progress=on_progress,
        )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        print_summary(result)


@contextmanager
def _progress(quiet: bool):
    """on_progress(stage, done, total): one bar per stage, for stages of PROGRESS_FROM photos."""
    from fakestudio.progress import progress_bars

    with progress_bars("photos", quiet) as bars:

        def on_progress(stage: str, done: int, total: int) -> None:
            if total >= PROGRESS_FROM:
                bars(stage, done, total)

        yield on_progress


def print_summary(result) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    ds = result.dataset
    for p in result.photos:
        if p.status == "skipped":
            console.print(f"skipped {escape(p.source)}: {escape(p.reason)}", soft_wrap=True)
    by_index = {p.index: p for p in result.photos}
    for p in result.photos:
        if p.status == "duplicate":
            orig = by_index[p.duplicate_of].source
            console.print(
                f"duplicate {escape(p.source)} of {escape(orig)} ({p.bits} bits): dropped",
                soft_wrap=True,
            )
    table = Table(title=f"dataset {escape(str(result.out))}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    skipped = [p for p in result.photos if p.status == "skipped"]
    dups = [p for p in result.photos if p.status == "duplicate"]
    table.add_row("photos", str(len(result.photos)))
    table.add_row("kept", str(len(ds.images)))
    table.add_row("duplicates", str(len(dups)))
    reasons: dict[str, int] = {}
    for p in skipped:
        kind = p.reason.split(":", 1)[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    table.add_row(
        "skipped",
        str(len(skipped))
        + (" (" + ", ".join(f"{n} {k}" for k, n in reasons.items()) + ")" if reasons else ""),
    )
    faces = sum(1 for i in ds.images if i.face)
    detection = result.face_detection
    table.add_row(
        "faces found",
        f"{faces} of {len(ds.images)}"
        if detection in ("haar", "custom")
        else ("off (centre crops)" if detection == "off" else "not available (centre crops)"),
    )
    table.add_row("buckets", ", ".join(f"{w}x{h}: {n}" for (w, h), n in ds.buckets().items()))
    from_txt = sum(1 for p in result.kept if p.caption_from == "txt")
    inserted = sum(1 for p in result.kept if p.token_inserted)
    table.add_row(
        "captions",
        f"{from_txt} from .txt, {len(ds.images) - from_txt} default, token inserted in {inserted}",
    )
    table.add_row(
        "token", escape(ds.token) + (f" ({escape(ds.class_word)})" if ds.class_word else "")
    )
    table.add_row("consent", escape(ds.consent.statement) if ds.consent else "not recorded")
    table.add_row("fingerprint", ds.fingerprint[:16] + "...")
    console.print(table)
    for w in ds.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True)
