"""`fakestudio compare A B`: two images side by side, provenance first, then pixel statistics.

Imports neither torch nor diffusers: the analysis lives in ``detectors.compare`` and
``detectors.report.html``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from fakestudio.commands.options import tsa_option
from fakestudio.errors import UserError

KIND_STYLES = {
    "labelled-ai": "bold white on purple4",
    "ai-watermark": "bold white on dark_magenta",
    "recovered": "bold white on blue3",
    "ai-metadata": "bold black on dark_orange",
    "credentials-not-ai": "bold white on grey35",
    "no-provenance": "bold white on grey30",
    "tampered": "bold white on red3",
    "unreadable": "bold white on grey42",
    "unknown": "bold white on grey42",
}


@click.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option(
    "--html",
    "html_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a self-contained HTML report (images embedded, no network assets).",
)
@click.option(
    "--png",
    "png_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a 1920x1080 poster PNG for a slide (labelled: watermark and C2PA manifest "
    "with both images as ingredients when one of them is AI-generated).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option(
    "--trust-anchors",
    type=click.Path(path_type=Path),
    default=None,
    help="PEM file of root certificates to trust when checking Content Credentials.",
)
@tsa_option
def compare(a, b, html_out, png_out, as_json, trust_anchors, tsa=None):
    """Compare images A and B: both verdicts, perceptual-hash distances, SSIM and a
    difference heat map (same shape only), frequency spectra, and plain-language notes.

    \b
    fakestudio compare fake.png photo.jpg --html report.html --png poster.png
    fakestudio compare original.png copy.jpg --json

    \b
    Perceptual hashes (64 bits): <= 6 bits apart is very likely the same picture re-encoded
    or resized; >= 18 means different pictures. None of this says which image is genuine:
    an image without a label is "no provenance found", and eyes cannot tell.

    \b
    Exit codes: 0 compared (whatever the verdicts); 2 an unreadable image, a bad option or
    an output that cannot be written.
    """
    from detectors.compare import ImageError, compare_images

    anchors = None
    if trust_anchors is not None:
        try:
            anchors = [trust_anchors.read_bytes()]
        except OSError as e:
            raise UserError(f"--trust-anchors {trust_anchors}: {e.strerror or e}") from None
        if b"-----BEGIN CERTIFICATE-----" not in anchors[0]:
            raise UserError(f"--trust-anchors {trust_anchors}: no PEM certificate in the file")
    for out in (html_out, png_out):
        if out is not None and not out.parent.is_dir():
            raise UserError(f"cannot write {out}: folder {out.parent} does not exist")
    if tsa and png_out is None:
        raise UserError("--tsa time-stamps the signed --png poster: give --png too")

    try:
        cmp = compare_images(a, b, trust_anchors=anchors)
    except ImageError as e:
        raise UserError(str(e)) from None

    from fakestudio.label.manifest import time_stamping

    written = {}
    try:
        with time_stamping(tsa):  # the authority is checked before anything is written
            if html_out is not None:
                from detectors.report.html import write_compare

                written["html"] = str(write_compare(cmp, html_out))
            if png_out is not None:
                # the poster shows the images: labelled as a composite, through the labeller
                from fakestudio.label.derived import write_poster

                write_poster(cmp, png_out)
                written["png"] = str(png_out)
    except OSError as e:
        raise UserError(f"cannot write {e.filename or 'the report'}: {e.strerror or e}") from None

    if as_json:
        d = cmp.to_dict()
        d["written"] = written
        click.echo(json.dumps(d, indent=2, default=str))
    else:
        print_summary(cmp, written)


def print_summary(cmp, written: dict) -> None:
    """A readable terminal summary (rich)."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    con = Console(highlight=False, soft_wrap=False)
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=False)
    t.add_column("")
    t.add_column("A", overflow="fold", max_width=48)
    t.add_column("B", overflow="fold", max_width=48)
    t.add_row("file", Text(cmp.a.name), Text(cmp.b.name))
    t.add_row(
        "size",
        f"{cmp.a.width}x{cmp.a.height} {cmp.a.format or '?'}",
        f"{cmp.b.width}x{cmp.b.height} {cmp.b.format or '?'}",
    )
    t.add_row(
        "verdict",
        Text(f" {cmp.a.verdict['outcome']} ", style=KIND_STYLES.get(cmp.a.verdict["kind"], "")),
        Text(f" {cmp.b.verdict['outcome']} ", style=KIND_STYLES.get(cmp.b.verdict["kind"], "")),
    )
    t.add_row("", Text(cmp.a.verdict["headline"]), Text(cmp.b.verdict["headline"]))
    con.print(t)
    con.print()

    h = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    h.add_column("pixels")
    h.add_column("value", justify="right")
    h.add_column("reading", overflow="fold")
    names = {"phash": "pHash", "dhash": "dHash", "ahash": "aHash"}
    from detectors.compare import hash_reading

    for k, v in cmp.hashes.items():
        reading = hash_reading(v["distance"])[0]
        h.add_row(f"{names.get(k, k)} distance", f"{v['distance']}/{v['bits']}", reading)
    if cmp.ssim is not None:
        h.add_row(
            "SSIM",
            f"{cmp.ssim:.3f}",
            f"at {cmp.ssim_size[0]}x{cmp.ssim_size[1]} (1 = identical, ~0 = unrelated)",
        )
    else:
        h.add_row("SSIM", "-", "images of different shapes or too small")
    for s, label in ((cmp.a, "A"), (cmp.b, "B")):
        st = s.spectrum_stats
        h.add_row(
            f"spectrum {label}",
            f"{st.get('high_frequency_share', 0):.3f}",
            f"high-frequency share; {st.get('periodic_peaks', 0)} isolated peaks",
        )
    con.print(h)
    con.print()
    for o in cmp.observations:
        con.print(Text("• " + o))
    for n in cmp.notes:
        con.print(Text("note: " + n, style="dim"))
    con.print()
    con.print(
        Panel(
            Text(cmp.message),
            title=Text(cmp.message_title, style="bold yellow"),
            border_style="yellow",
            expand=True,
        )
    )
    for kind, path in written.items():
        con.print(Text(f"wrote {kind.upper()}: {path}"))
