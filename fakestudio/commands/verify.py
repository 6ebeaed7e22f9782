"""`fakestudio verify` and `fakestudio audit`: where did an image come from? (docs/verify.md)

Neither command imports torch or diffusers: only ``detectors`` (numpy, Pillow, c2pa).
"""

from __future__ import annotations

import functools
import json
import math
from contextlib import contextmanager
from pathlib import Path

import click

from fakestudio.errors import UserError
from fakestudio.extras import require

EXIT_CODES_HELP = """
\b
Exit codes:
  0  labelled AI: a manifest declaring AI, provenance recovered from a registry or
     your ledger (this picture matches the record), or only claimed by an AI
     watermark or AI-generator metadata (see the tier)
  1  no provenance found, or credentials that do not declare AI
  2  usage error (bad option, missing file or folder)
  3  tampered: a manifest is present but invalid (pixels or credentials changed);
     or label-mismatch: the label was copied from another picture
  4  unreadable: the file could not be analysed
With several images the most urgent code wins: 3, then 4, then 1, then 0.
Tiers: confirmed (signed, and this picture is what was signed), recorded (your
ledger, and this picture matches), claimed (a watermark or metadata: copyable),
mismatch, broken, none.
"""

AUDIT_EXIT_HELP = """
\b
Exit codes:
  0  done, and nothing in the --fail-on categories (always 0 without --fail-on)
  1  --fail-on unlabelled or ai-metadata matched at least one file
  2  usage error (bad option, missing folder)
  3  --fail-on tampered or mismatch matched at least one file
  4  --fail-on unreadable matched at least one file
  130 interrupted (Ctrl-C): the reports, CSV and JSON hold the files done so far
The most urgent code wins: 3, then 4, then 1.
"""


def _trust_option(f):
    return click.option(
        "--trust-anchors",
        "trust_anchors",
        multiple=True,
        type=click.Path(path_type=Path),
        metavar="PEM",
        help="Root certificates (PEM) to trust for C2PA; repeatable. Your local signing "
        "identity's CA is always trusted.",
    )(f)


def _online_option(f):
    return click.option(
        "--online",
        is_flag=True,
        help="Let C2PA fetch a manifest stored at a remote address and ask OCSP responders "
        "whether the signer's certificate was revoked. Off by default: nothing is fetched.",
    )(f)


def _time_limit_option(then: str):
    return click.option(
        "--time-limit",
        "time_limit",
        type=float,
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        help=f"Most time one file may take; {then}.",
    )


def _ledger_options(f):
    f = click.option(
        "--no-ledger",
        is_flag=True,
        help="Do not look images up in your local output ledger.",
    )(f)
    return click.option(
        "--ledger",
        "ledger",
        type=click.Path(path_type=Path),
        default=None,
        help="Look images up in this ledger file (a team's shared ledger.sqlite, read only) "
        "instead of your own.",
    )(f)


def _registry_option(f):
    return click.option(
        "--registry",
        "registry",
        default=None,
        metavar="URL",
        help="When an image's manifest is gone, ask this soft-binding registry for it (its "
        "watermark payload, or the image itself when no payload reads). Never by default.",
    )(f)


def registry_choice(url: str | None) -> str | None:
    if url and not url.startswith(("http://", "https://")):
        raise UserError(f"--registry {url}: give an http:// or https:// URL")
    return url or None


def ledger_choice(ledger: Path | None, no_ledger: bool) -> tuple[Path | None, bool]:
    """(ledger_path, use_ledger) from --ledger / --no-ledger; a --ledger must be a ledger."""
    if ledger is None:
        return None, not no_ledger
    if no_ledger:
        raise UserError("--ledger and --no-ledger contradict each other")
    import sqlite3

    from detectors.ledger import Ledger

    if not ledger.is_file():
        raise UserError(f"--ledger {ledger}: no such file")
    try:
        with Ledger(ledger, readonly=True) as led:
            led.db.execute("SELECT payload, sha256, phash FROM outputs LIMIT 1").fetchall()
    except sqlite3.Error as e:
        raise UserError(f"--ledger {ledger}: not a fakestudio ledger ({e})") from None
    return ledger, True


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report as JSON (a list for several images)."
)
@_trust_option
@_ledger_options
@_registry_option
@click.option(
    "--html",
    "html_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write a self-contained HTML report (one image) to this file.",
)
@_time_limit_option("an image that takes longer is reported unreadable")
@_online_option
def verify(
    images,
    as_json,
    trust_anchors,
    ledger,
    no_ledger,
    html_out,
    time_limit,
    registry=None,
    online=False,
):
    """Say what can and cannot be said about where each image came from.

    Checks Content Credentials (C2PA), invisible watermarks (fakestudio's, Stable Diffusion's,
    SDXL's), metadata claims (Automatic1111, ComfyUI, InvokeAI, NovelAI, IPTC, camera EXIF)
    and your local output ledger. The verdict never says an image is real: a missing label
    proves nothing.

    \b
    fakestudio verify photo.jpg
    fakestudio verify out/*.png --json
    fakestudio verify cloud.jpg --online --trust-anchors roots.pem
    """
    from detectors.audit import TimeUp, deadline, error_report, timeout_reason
    from detectors.verdict import combined_exit_code
    from detectors.verify import verify_image

    if not (math.isfinite(time_limit) and time_limit > 0):
        raise UserError(f"--time-limit {time_limit}: give a positive number of seconds")
    for p in images:
        if p.is_dir():
            raise UserError(f"{p}: is a folder; use `fakestudio audit {p}`")
        if not p.exists():
            if p.is_symlink():
                raise UserError(f"{p}: broken symbolic link (it points at a missing file)")
            raise UserError(f"{p}: no such file")
    if html_out is not None and len(images) != 1:
        raise UserError("--html writes one image's report: give a single IMG (or use audit --html)")
    anchors = read_trust_anchors(trust_anchors)
    ledger_path, use_ledger = ledger_choice(ledger, no_ledger)
    registry = registry_choice(registry)
    reports = []
    for p in images:
        try:
            with deadline(time_limit):
                rep = verify_image(
                    p,
                    trust_anchors=anchors,
                    ledger_path=ledger_path,
                    use_ledger=use_ledger,
                    registry=registry,
                    online=online,
                ).to_dict()
        except TimeUp:
            rep = error_report(str(p), timeout_reason(time_limit))
        reports.append(rep)
        if not as_json:
            from rich.console import Console

            from detectors.report.terminal import render_report

            render_report(reports[-1], Console(soft_wrap=False))
    if as_json:
        payload = reports[0] if len(reports) == 1 else reports
        click.echo(json.dumps(payload, indent=2, default=str))
    if html_out is not None:
        _write_html("verify", reports[0], html_out)
    click.get_current_context().exit(combined_exit_code(r["verdict"]["exit_code"] for r in reports))


@click.command(epilog=AUDIT_EXIT_HELP)
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print the summary and every file's report as JSON."
)
@click.option(
    "--csv",
    "csv_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write one CSV row per file here.",
)
@click.option(
    "--fail-on",
    "fail_on",
    default="",
    metavar="CATEGORIES",
    help="Comma-separated: unlabelled, tampered, mismatch, ai-metadata, unreadable. Exit non-zero when "
    "any file falls in one (a CI gate for teams that must label their outputs).",
)
@click.option(
    "--workers", type=int, default=None, help="Parallel processes. Default: the CPUs available."
)
@_time_limit_option("a file that takes longer is reported unreadable and the audit goes on")
@click.option(
    "--jsonl",
    "as_jsonl",
    is_flag=True,
    help="Print one JSON line per file as it finishes, then a summary line (streaming).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: a process pool on this machine; ray: Ray tasks (a local Ray instance with "
    "--workers CPUs, or the cluster at --address; files must be at the same path on every node).",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="With --engine ray: the cluster, e.g. ray://head:10001 (default: start a local instance).",
)
@_trust_option
@_ledger_options
@_registry_option
@click.option(
    "--html",
    "html_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write a self-contained HTML summary page to this file.",
)
@_online_option
def audit(
    folder,
    as_json,
    csv_out,
    fail_on,
    workers,
    time_limit,
    as_jsonl,
    trust_anchors,
    ledger,
    no_ledger,
    html_out,
    registry=None,
    engine="local",
    address=None,
    online=False,
):
    """Verify every image under FOLDER (recursively) and count what was found.

    Categories: labelled (manifest, watermark or ledger), unlabelled (no provenance),
    tampered, AI metadata only, unreadable. Symbolic-link loops are followed once.

    \b
    fakestudio audit out/
    fakestudio audit uploads/ --csv audit.csv --fail-on unlabelled,tampered
    """
    from detectors.audit import FAIL_ON, fail_exit_code

    if not folder.exists():
        raise UserError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; use `fakestudio verify {folder}`")
    wanted = {x.strip() for x in fail_on.split(",") if x.strip()}
    unknown = wanted - set(FAIL_ON)
    if unknown:
        raise UserError(
            f"--fail-on: unknown {', '.join(sorted(unknown))}; choose from {', '.join(FAIL_ON)}"
        )
    if workers is not None and workers < 1:
        raise UserError("--workers must be at least 1")
    if not (math.isfinite(time_limit) and time_limit > 0):
        raise UserError(f"--time-limit {time_limit}: give a positive number of seconds")
    if as_json and as_jsonl:
        raise UserError("--json and --jsonl: choose one")
    if csv_out is not None and csv_out.is_dir():
        raise UserError(f"--csv {csv_out}: is a folder")
    anchors = read_trust_anchors(trust_anchors)
    ledger_path, use_ledger = ledger_choice(ledger, no_ledger)
    registry = registry_choice(registry)
    extra: dict = {"registry": registry} if registry else {}
    if online:
        extra["online"] = True
    if address and engine != "ray":
        raise UserError("--address is for --engine ray")
    if engine == "ray":
        require("cluster", "audit --engine ray")
        from detectors.audit_ray import audit_ray

        run_audit = functools.partial(audit_ray, address=address, num_cpus=workers)
    else:
        from detectors.audit import audit

        run_audit = functools.partial(audit, workers=workers)

    from detectors.audit import CsvStream
    from detectors.files import clean_stale_parts

    def to_csv(write, *args) -> None:
        try:
            write(*args)
        except OSError as e:
            raise UserError(f"--csv {csv_out}: cannot write ({e.strerror or e})") from e

    stream = None
    if csv_out is not None:
        clean_stale_parts(csv_out.parent if str(csv_out.parent) else Path("."), csv_out.name)
        try:
            stream = CsvStream(csv_out)
        except OSError as e:
            raise UserError(f"--csv {csv_out}: cannot write ({e.strerror or e})") from e
    try:
        with _audit_progress(quiet=as_json or as_jsonl) as (on_start, on_progress):

            def progress(done, total, rep):
                on_progress(done, total, rep)
                if stream is not None:
                    to_csv(stream.add, rep)
                if as_jsonl:
                    click.echo(json.dumps(rep, default=str))

            try:
                result = run_audit(
                    folder,
                    trust_anchors=anchors,
                    ledger_path=ledger_path,
                    use_ledger=use_ledger,
                    on_start=on_start,
                    on_progress=progress,
                    time_limit=time_limit,
                    **extra,
                )
            except OSError as e:  # the folder went away, or the Ray cluster is out of reach
                raise UserError(audit_os_error(e, folder, engine, address)) from e
        if stream is not None:
            to_csv(stream.finish, result)
    finally:
        if stream is not None:
            stream.abort()
    if html_out is not None:
        _write_html("audit", result.reports, html_out)
    if as_jsonl:
        summary = {k: v for k, v in result.to_dict().items() if k != "files"}
        click.echo(json.dumps(summary, default=str))
    elif as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        from rich.console import Console

        from detectors.report.terminal import render_audit_files, render_summary

        console = Console()
        if result.reports:
            render_audit_files(result.reports, console)
        from detectors.files import printable

        render_summary(result.summary, console, title=f"audit of {printable(folder)}")
        for note in result.notes:
            console.print(f"note: {printable(note)}", markup=False, style="dim")
        console.print(
            "A missing label proves nothing: most AI images carry none, and uploads strip "
            "metadata. Do not trust your eyes.",
            style="yellow",
        )
    if not result.complete:
        click.get_current_context().exit(130)
    click.get_current_context().exit(fail_exit_code(result.summary, wanted))


def read_trust_anchors(paths) -> list[bytes]:
    """The PEM files given with --trust-anchors; a missing or non-PEM file is a usage error."""
    out = []
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as e:
            raise UserError(f"--trust-anchors {p}: cannot read ({e.strerror or e})") from e
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise UserError(f"--trust-anchors {p}: no PEM certificate in this file")
        out.append(data)
    return out


def _write_html(kind: str, payload, path: Path) -> None:
    try:
        from detectors.report import html
    except ImportError as e:
        raise UserError(f"--html is not available in this installation ({e})") from e
    try:
        if kind == "verify":
            html.write_verify(payload, path)
        else:
            html.write_audit(payload, path)
    except OSError as e:
        raise UserError(f"--html {path}: cannot write ({e.strerror or e})") from e


@contextmanager
def _audit_progress(quiet: bool):
    """(on_start(total), on_progress(done, total, report)) drawing one bar of images."""
    from fakestudio.progress import progress_bars

    with progress_bars("images", quiet) as bars:
        yield (
            (lambda total: bars("auditing", 0, total)),
            (lambda done, total, rep: bars("auditing", done, total)),
        )


def audit_os_error(e: OSError, folder: Path, engine: str, address: str | None) -> str:
    """One line for an OSError out of an audit, saying what failed: the cluster, or a file."""
    if engine == "ray" and isinstance(e, ConnectionError):
        where = f" at {address}" if address else ""
        return f"--engine ray: cannot reach the Ray cluster{where} ({e})"
    return f"{e.filename or folder}: {e.strerror or e}"
