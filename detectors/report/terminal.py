"""Rich terminal rendering of a verify report and of an audit summary.

Reports are rendered from their JSON form (``Report.to_dict()``), so a saved ``--json`` output
renders the same. Order: the verdict first, then the evidence per source (C2PA, watermarks,
metadata, ledger, the file), then the "do not trust your eyes" message. Text that came from the
file (metadata, manifest fields) is printed literally, never interpreted as rich markup.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from detectors.files import printable
from detectors.verdict import CATEGORY_ORDER

STYLES = {
    "labelled": "bold magenta",
    "unlabelled": "bold white",
    "tampered": "bold red",
    "mismatch": "bold red",
    "ai-metadata": "bold yellow",
    "unreadable": "bold bright_black",
}
CATEGORY_LABELS = {
    "labelled": "labelled AI (manifest, watermark or ledger)",
    "unlabelled": "no provenance found",
    "tampered": "tampered or invalid credentials",
    "mismatch": "label copied from another picture",
    "ai-metadata": "AI metadata only (unsigned claims)",
    "unreadable": "unreadable",
}
MAX_SHOWN = 300  # characters of any one value
TIER_WORDS = {
    "confirmed": "a valid signature, and this picture is what was signed",
    "recorded": "your own ledger holds it, and this picture matches",
    "claimed": "a watermark or metadata, nothing signed behind it",
    "mismatch": "the label belongs to another picture",
    "broken": "credentials present but not holding",
    "none": "nothing to go on",
}


def render_report(report: dict, console: Console | None = None) -> None:
    """Print one report: verdict, evidence per source, then the message."""
    console = console or Console()
    console.print(report_renderable(report))


def report_renderable(report: dict) -> Group:
    v = report.get("verdict") or {}
    style = STYLES.get(v.get("category", ""), "bold")
    head = Text()
    head.append(f"{printable(report.get('file', '?'))}\n", style="bold")
    head.append(_clip(v.get("headline", "")), style=style)
    head.append(
        f"\noutcome: {v.get('outcome')}   tier: {v.get('tier', '?')} ({TIER_WORDS.get(v.get('tier'), '')})"
        f"   exit code: {v.get('exit_code')}",
        style="dim",
    )
    parts: list[Any] = [Panel(head, border_style=style.replace("bold ", ""), expand=True)]

    ev = Table.grid(padding=(0, 2))
    ev.add_column(style="bold cyan", no_wrap=True)
    ev.add_column(overflow="fold")
    for label, lines in _evidence(report):
        ev.add_row(label, Text("\n".join(_clip(x) for x in lines) if lines else "-"))
    parts.append(ev)
    if v.get("message"):
        parts.append(
            Panel(Text(v["message"]), title="Do not trust your eyes", border_style="yellow")
        )
    return Group(*parts)


def render_summary(summary: dict, console: Console | None = None, *, title: str = "audit") -> None:
    """Print an audit summary: one row per category with its count."""
    console = console or Console()
    console.print(summary_table(summary, title=title))


def summary_table(summary: dict, *, title: str = "audit") -> Table:
    counts = summary.get("categories") or {}
    table = Table(title=_clip(title), show_footer=True)
    table.add_column("category", footer="total")
    table.add_column("files", justify="right", footer=str(summary.get("total", 0)))
    table.add_column("meaning")
    for cat in CATEGORY_ORDER:
        n = counts.get(cat, 0)
        table.add_row(Text(cat, style=STYLES.get(cat, "")), str(n), CATEGORY_LABELS.get(cat, ""))
    return table


def render_audit_files(
    reports: list[dict], console: Console | None = None, *, limit: int = 200
) -> None:
    """A one-line-per-file table (the non-labelled ones first), cut at ``limit`` rows."""
    console = console or Console()
    order = {
        c: i
        for i, c in enumerate(
            ("mismatch", "tampered", "unreadable", "unlabelled", "ai-metadata", "labelled")
        )
    }
    rows = sorted(
        reports,
        key=lambda r: (order.get((r.get("verdict") or {}).get("category"), 9), str(r.get("file"))),
    )
    table = Table(show_header=True, header_style="bold")
    table.add_column("file", overflow="fold")
    table.add_column("outcome", no_wrap=True)
    table.add_column("headline", overflow="fold")
    for r in rows[:limit]:
        v = r.get("verdict") or {}
        table.add_row(
            Text(_clip(str(r.get("file", "?")), 120)),
            Text(str(v.get("outcome")), style=STYLES.get(v.get("category", ""), "")),
            Text(_clip(v.get("headline", ""), 160)),
        )
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit} more files not shown (use --json or --csv)"
    console.print(table)


# --- internals ------------------------------------------------------------------------------


def _generator(info: dict) -> str:
    """claim_generator_info's name and version; c2pa-rs adds its own version under
    `org.contentauth.c2pa_rs`, which is not the generator's."""
    named = [str(info[k]) for k in ("name", "version") if info.get(k)]
    return " ".join(named) if named else " ".join(str(v) for v in info.values())


def _agreement(cand: dict) -> str:
    """How a ledger candidate's known payload agreed: the first mark's bits, or (labels since
    issue 24 carry only the durable mark, whose match reports no bit count) its test."""
    if cand.get("agreeing_bits") is None:
        return "in the durable mark" if cand.get("confirmed") else "not in either mark"
    return f"{cand.get('agreeing_bits')}/64 bits" + ("" if cand.get("confirmed") else " agree")


def _evidence(report: dict) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    c = report.get("c2pa") or {}
    lines = [f"{c.get('state')}: {c.get('message') or ''}".rstrip(": ")]
    for key, label in (
        ("signer", "signer"),
        ("issuer", "issuer"),
        ("signed_time", "signed"),
        ("digital_source_type", "digitalSourceType"),
        ("claim_generator", "claim generator"),
        ("title", "title"),
        ("remote_url", "remote manifest"),
    ):
        if c.get(key):
            lines.append(f"{label}: {c[key]}")
    if c.get("trust_note"):
        lines.append(f"who vouches: {c['trust_note']}")
    ts = c.get("timestamp") or {}
    if ts.get("time") or ts.get("authority"):
        vouched = {True: "vouched for", False: "not vouched for", None: "not checked"}
        lines.append(
            f"time-stamp: {ts.get('time') or '?'} by {ts.get('authority') or 'an authority'} "
            f"({vouched.get(ts.get('trusted'))})"
        )
    for ident in c.get("identities") or []:
        state = {True: "trusted", False: "NOT trusted", None: "trust not checked"}
        lines.append(
            f"identity: {ident.get('who') or '?'} via {ident.get('credential')}"
            f"{' issued by ' + ident['issuer'] if ident.get('issuer') else ''} "
            f"({state.get(ident.get('trusted'))}; {ident.get('note')})"
        )
    if c.get("generator"):
        lines.append("generator: " + _generator(c["generator"]))
    if c.get("actions"):
        lines.append("actions: " + ", ".join(c["actions"]))
    if c.get("ingredients"):
        lines.append("ingredients: " + ", ".join(c["ingredients"]))
    gen = c.get("generation") or {}
    if isinstance(gen, dict) and gen.get("base_model"):
        lines.append(_provenance_line(gen))
    out.append(("C2PA", lines))

    wl = []
    for w in report.get("watermarks") or []:
        d = w.get("details") or {}
        if d.get("error"):
            wl.append(f"{w.get('scheme')}: not checked ({d['error']})")
            continue
        if d.get("skipped"):
            wl.append(f"{w.get('scheme')}: {d['skipped']}")
            continue
        if w.get("found") and not w.get("payload"):
            wl.append(
                f"{w.get('scheme')}: FOUND, identifier unreadable (pilot z {d.get('pilot_z')}, "
                f"confidence {w.get('confidence', 0):.2f})"
            )
            continue
        acc = f", bit accuracy {w['bit_accuracy']:.2f}" if w.get("bit_accuracy") is not None else ""
        if w.get("found"):
            wl.append(
                f"{w.get('scheme')}: FOUND payload {w.get('payload')} (confidence {w.get('confidence', 0):.2f}{acc})"
            )
        else:
            part = ", estimated on part of the image" if d.get("estimated") else ""
            wl.append(
                f"{w.get('scheme')}: not found (confidence {w.get('confidence', 0):.2f}{acc}{part})"
            )
    out.append(("Watermarks", wl or ["not checked (no pixels)"]))

    m = report.get("metadata") or {}
    ml = [f"{cl.get('summary')} [{cl.get('where')}]" for cl in m.get("claims") or []]
    ml += [f"problem: {p}" for p in m.get("problems") or []]
    if m.get("claims"):
        ml.append("(metadata is a claim: anyone can write or remove it)")
    out.append(("Metadata", ml or ["no generator or camera metadata"]))

    led = report.get("ledger") or {}
    ll: list[str] = []
    if led.get("record_found") and not led.get("matched"):
        e = led.get("entry") or {}
        ll.append(
            f"the watermark points to ledger #{e.get('ledger_id')} {e.get('file_name')} "
            f"({e.get('width')}x{e.get('height')} {e.get('format')}), created {e.get('created')}"
        )
        ll.append(_content_line(led.get("content")))
    elif led.get("matched"):
        e = led.get("entry") or {}
        ll.append(
            f"match by {led.get('how')}: ledger #{e.get('ledger_id')} {e.get('file_name')} ({e.get('width')}x{e.get('height')} {e.get('format')}), created {e.get('created')}"
        )
        prov = e.get("provenance") or {}
        if prov:
            ll.append(_provenance_line(prov))
        if led.get("how") != "sha256":
            ll.append(_content_line(led.get("content")))
        for cand in led.get("candidates") or []:
            if cand.get("confirmed"):
                ll.append(
                    f"pHash distance {cand.get('phash_distance')}, watermark payload "
                    f"{_agreement(cand)} ({cand.get('copy')}), "
                    f"chance by luck {cand.get('p_value'):.0e}"
                )
    elif led.get("checked"):
        ll.append(f"no match among {led.get('entries')} outputs")
    else:
        ll.append(led.get("note") or "not checked")
    for cand in led.get("candidates") or []:
        if not cand.get("confirmed"):
            ll.append(
                f"candidate {cand.get('file_name')} (pHash distance {cand.get('phash_distance')}): "
                f"not confirmed by its watermark ({_agreement(cand)})"
            )
    out.append(("Ledger", ll))

    reg = report.get("registry") or {}
    if reg.get("checked") or reg.get("note"):
        rl: list[str] = []
        if reg.get("matched"):
            c = reg.get("c2pa") or {}
            rl.append(
                f"{reg.get('url')}: manifest {reg.get('manifest_id')}, signed by "
                f"{c.get('signer') or c.get('issuer') or '?'} ({c.get('state')}), matched by {reg.get('how')}"
            )
            if c.get("generation"):
                gen = c["generation"]
                rl.append(
                    f"generation: {(gen.get('base_model') or {}).get('name')}, seed {gen.get('seed')}, "
                    f"{len(gen.get('loras') or [])} LoRA(s)"
                )
            rl.append(_content_line(reg.get("content")))
            rl.append(reg.get("proves") or "")
        elif reg.get("record_found"):
            c = reg.get("c2pa") or {}
            rl.append(
                f"{reg.get('url')}: the watermark points to manifest {reg.get('manifest_id')}, "
                f"signed by {c.get('signer') or c.get('issuer') or '?'} ({c.get('state')})"
            )
            rl.append(_content_line(reg.get("content")))
        else:
            rl.append(reg.get("note") or f"{reg.get('url')}: no match")
        out.append(("Registry", rl))

    img = report.get("image") or {}
    fl = []
    if img.get("width"):
        fl.append(
            f"{report.get('format')} {img.get('width')}x{img.get('height')} {img.get('mode') or ''}".strip()
        )
    elif report.get("format"):
        kind = (report.get("media") or {}).get("kind")
        fl.append(f"{report['format']} ({kind})" if kind else str(report["format"]))
    if report.get("sha256"):
        fl.append(f"sha256 {report['sha256']}")
    media = report.get("media") or {}
    if media.get("frames_sampled") is not None:
        fl.append(
            f"video {media.get('width')}x{media.get('height')} {media.get('codec') or ''}, "
            f"{media.get('duration_s')} s"
        )
    for key, status in (report.get("checks") or {}).items():
        if key in ("pixels", "watermarks", "metadata") and (
            not str(status).startswith("ran") or (key == "watermarks" and status != "ran")
        ):
            fl.append(printable(f"{key}: {status}"))
    if img.get("reason"):
        fl.append(printable(img["reason"]))
    fl += [printable(n) for n in img.get("notes") or []]
    out.append(("File", fl or ["-"]))
    return out


def _content_line(check: dict | None) -> str:
    """What the content check found: the picture against the record the label points to."""
    if not check:
        return "content: the record holds no content description (labelled before content binding)"
    words = {
        "match": "this picture IS that output",
        "mismatch": "this picture is NOT that output",
        "inconclusive": "could not tell whether this picture is that output",
    }
    return f"content: {words.get(check.get('outcome'), check.get('outcome'))}; {check.get('reason', '')}"


def _provenance_line(p: dict) -> str:
    base = p.get("base_model") or {}
    name = base.get("name") if isinstance(base, dict) else base
    sha = (base.get("sha256") or "")[:12] if isinstance(base, dict) else ""
    loras = p.get("loras") or []
    lora_txt = ", ".join(
        f"{x.get('name')}:{x.get('weight')}" if isinstance(x, dict) else str(x) for x in loras[:8]
    )
    parts = [f"base model {name}" + (f" ({sha})" if sha else "")]
    parts.append(f"LoRAs {lora_txt}" if loras else "no LoRA")
    if p.get("generator") or p.get("software"):
        parts.insert(0, str(p.get("generator") or p.get("software")))
    if p.get("labelled_by"):
        parts.append(f"labelled by {p['labelled_by']}")
    if p.get("seed") is not None:
        parts.append(f"seed {p['seed']}")
    return "provenance: " + ", ".join(parts)


def _clip(v: Any, limit: int = MAX_SHOWN) -> str:
    s = printable(v) if v is not None else ""
    return s if len(s) <= limit else s[:limit] + "..."
