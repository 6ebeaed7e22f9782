"""Self-contained HTML reports and a slide-ready poster PNG.

    from detectors.report import html
    html.write_verify(report_dict, "verify.html")          # one image: verdict and evidence
    html.write_compare(comparison, "compare.html")         # two images side by side
    html.write_audit(list_of_report_dicts, "audit.html")   # a folder's summary
    html.poster_png(comparison, "poster.png")              # 1920x1080 PNG for a slide

Every page is one file: CSS inline, images as base64 ``data:`` URIs, no script, no network
asset (URLs found in reports are shown as text, never fetched or linked). Templates are Jinja2
with autoescaping, so text from a hostile file's metadata cannot inject markup. Every page ends
with the "Do not trust your eyes" message worded for the case. Files are written atomically.
Never imports torch or fakestudio.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from PIL import Image, ImageDraw, ImageFont

from detectors.compare import (
    AI_KINDS,
    DIFFERENT_MIN_BITS,
    SAME_MAX_BITS,
    TRUST_TITLE,
    Comparison,
    ImageError,
    load_image,
    verdict_of,
)
from detectors.files import atomic_write, printable

TEMPLATES = Path(__file__).resolve().parent / "templates"
PREVIEW_SIDE = 1024  # previews embedded in pages are at most this large
MAX_TEXT = 400  # any one value shown is cut to this many characters
MAX_ITEMS = 40  # at most this many key/value rows per block

KIND_LABELS = {
    "labelled-ai": "Labelled AI-generated",
    "ai-watermark": "AI per watermark",
    "recovered": "Provenance recovered",
    "ai-metadata": "AI per metadata only",
    "credentials-not-ai": "Credentials, AI not declared",
    "no-provenance": "No provenance found",
    "tampered": "Tampered or invalid",
    "label-mismatch": "Label copied from another picture",
    "unreadable": "Unreadable",
    "unknown": "Not verified",
}
# Slide colours per kind (no green anywhere: "no label" is never "fine").
KIND_COLOURS = {
    "labelled-ai": (107, 47, 179),
    "ai-watermark": (138, 43, 150),
    "recovered": (47, 95, 179),
    "ai-metadata": (179, 107, 0),
    "credentials-not-ai": (62, 88, 110),
    "no-provenance": (85, 85, 85),
    "tampered": (192, 38, 45),
    "label-mismatch": (176, 32, 96),
    "unreadable": (120, 120, 120),
    "unknown": (110, 110, 110),
}

GENERAL_NOTE = (
    "A label (C2PA manifest, watermark, metadata) says who made a file and how, when it is "
    "there. Its absence says nothing: most generators add none, and a screenshot, a re-upload "
    "or a crop removes them. Looking closely does not help either: today's generated pictures "
    "pass for photographs, and the statistics on this page (hashes, SSIM, spectra) measure how "
    "alike two files are, not whether what they show happened."
)


# --- public API -------------------------------------------------------------------------------


def render_verify(report: dict, *, image_path: str | Path | None = None) -> str:
    """One image's verify report (``Report.to_dict()``) as a self-contained HTML page.
    The image is embedded from ``image_path`` or the report's ``file`` when readable."""
    view = _report_view(report, image_path=image_path, preview=PREVIEW_SIDE)
    return (
        _env()
        .get_template("verify.html.j2")
        .render(
            page_title=f"Verify: {view['name']}",
            generated=_now(),
            r=view,
            trust_title=TRUST_TITLE,
            trust_message=_single_trust_message(view),
            general_note=GENERAL_NOTE,
        )
    )


def render_compare(comparison: Comparison) -> str:
    """A comparison (``detectors.compare.compare_images``) as a self-contained HTML page."""
    c = comparison
    sides = []
    for label, s in (("A", c.a), ("B", c.b)):
        view = _report_view(s.report or {}, image=s.image, preview=900)
        view.update(
            label=label,
            name=s.name,
            verdict=s.verdict,
            kind_label=KIND_LABELS.get(s.verdict["kind"], ""),
            size=f"{s.width}x{s.height}",
            format=s.format or "?",
            frames=s.frames,
            spectrum_uri=_data_uri(s.spectrum, "JPEG"),
            spectrum_stats=s.spectrum_stats,
        )
        sides.append(view)
    hashes = [
        {
            "name": {"phash": "pHash", "dhash": "dHash", "ahash": "aHash"}.get(k, k),
            "a": v["a"],
            "b": v["b"],
            "distance": v["distance"],
            "bits": v["bits"],
            "reading": _bits_reading(v["distance"]),
        }
        for k, v in c.hashes.items()
    ]
    return (
        _env()
        .get_template("compare.html.j2")
        .render(
            page_title=f"Compare: {c.a.name} and {c.b.name}",
            generated=_now(),
            c=c,
            sides=sides,
            hashes=hashes,
            same_max=SAME_MAX_BITS,
            different_min=DIFFERENT_MIN_BITS,
            heatmap_uri=_data_uri(c.heatmap, "PNG") if c.heatmap is not None else None,
            heat_legend=_legend_css(),
            trust_title=c.message_title,
            trust_message=c.message,
            general_note=GENERAL_NOTE,
        )
    )


def render_audit(reports: list[dict], *, title: str | None = None) -> str:
    """A summary page for many verify reports (an audit of a folder)."""
    rows = []
    for rep in reports:
        v = verdict_of(rep)
        signals = [
            f"{s.get('source', '?')}: {_text(s.get('summary') or s.get('finding', ''), 160)}"
            for s in (rep.get("signals") or [])
            if isinstance(s, dict)
        ]
        rows.append(
            {
                "file": _text(rep.get("file", "?"), 300),
                "verdict": v,
                "kind_label": KIND_LABELS.get(v["kind"], ""),
                "signals": signals[:4],
            }
        )
    counts = Counter(r["verdict"]["kind"] for r in rows)
    summary = [
        {"kind": k, "label": KIND_LABELS[k], "count": counts.get(k, 0)}
        for k in KIND_LABELS
        if counts.get(k, 0) or k in ("labelled-ai", "no-provenance", "tampered", "unreadable")
    ]
    return (
        _env()
        .get_template("audit.html.j2")
        .render(
            page_title=title or f"Audit of {len(rows)} file{'s' if len(rows) != 1 else ''}",
            generated=_now(),
            rows=rows,
            summary=summary,
            total=len(rows),
            trust_title=TRUST_TITLE,
            trust_message=_audit_trust_message(counts, len(rows)),
            general_note=GENERAL_NOTE,
        )
    )


def write_html(text: str, path: str | Path) -> Path:
    """Write a rendered page atomically (never a half-written report)."""
    path = Path(path)
    atomic_write(path, text.encode("utf-8", "backslashreplace"))
    return path


def write_verify(report: dict, path: str | Path, **kw) -> Path:
    return write_html(render_verify(report, **kw), path)


def write_compare(comparison: Comparison, path: str | Path) -> Path:
    return write_html(render_compare(comparison), path)


def write_audit(reports: list[dict], path: str | Path, **kw) -> Path:
    return write_html(render_audit(reports, **kw), path)


# --- the poster -------------------------------------------------------------------------------

POSTER_SIZE = (1920, 1080)
POSTER_BG = (17, 17, 20)
_BAND_BG = (250, 204, 21)
_BAND_FG = (17, 17, 20)


def poster_png(comparison: Comparison, path: str | Path) -> dict[str, Any]:
    """A 1920x1080 PNG for a slide: both images side by side, each verdict headline under its
    image, the distances, and the "do not trust your eyes" message at the bottom. Written
    atomically. Returns the layout: ``{"size", "background", "boxes": {"a": (x0, y0, x1, y1),
    "b": ...}}`` (where each image was placed).

    The file carries no label: fakestudio's commands label the poster (``poster_image``) through
    its labeller when a shown image is AI-generated."""
    canvas, layout = poster_image(comparison)
    buf = io.BytesIO()
    canvas.save(buf, "PNG", optimize=False)
    atomic_write(Path(path), buf.getvalue())
    return layout


def poster_image(comparison: Comparison) -> tuple[Image.Image, dict[str, Any]]:
    """The poster's pixels (RGB, 1920x1080) and its layout (see ``poster_png``)."""
    c = comparison
    W, H = POSTER_SIZE
    canvas = Image.new("RGB", (W, H), POSTER_BG)
    d = ImageDraw.Draw(canvas)
    margin, gap = 48, 48
    col_w = (W - 2 * margin - gap) // 2
    top, img_h = 104, 520

    title_font = _font(44)
    d.text((margin, 34), "Two images, side by side", font=title_font, fill=(240, 240, 240))
    sub = f"pHash {c.hashes['phash']['distance']}/64 bits apart"
    sub += f"  ·  SSIM {c.ssim:.3f}" if c.ssim is not None else "  ·  SSIM: shapes differ"
    sub_font = _font(28)
    d.text(
        (W - margin - d.textlength(sub, font=sub_font), 44),
        sub,
        font=sub_font,
        fill=(170, 170, 180),
    )

    boxes: dict[str, tuple[int, int, int, int]] = {}
    for i, (key, s) in enumerate((("a", c.a), ("b", c.b))):
        x0 = margin + i * (col_w + gap)
        im = s.image.copy()
        im.thumbnail((col_w, img_h), Image.Resampling.LANCZOS)
        if im.width < col_w and im.height < img_h:  # small images: scale up to fill the slide
            k = min(col_w / im.width, img_h / im.height)
            im = s.image.resize(
                (max(1, int(im.width * k)), max(1, int(im.height * k))), Image.Resampling.LANCZOS
            )
        px = x0 + (col_w - im.width) // 2
        py = top + (img_h - im.height) // 2
        canvas.paste(im, (px, py))
        boxes[key] = (px, py, px + im.width, py + im.height)
        # verdict under the image
        colour = KIND_COLOURS.get(s.verdict["kind"], KIND_COLOURS["unknown"])
        vy = top + img_h + 24
        head = f"{key.upper()}: {s.verdict['headline']}"
        for hsize in (38, 34, 30, 27, 24):
            head_font = _font(hsize)
            lines = _wrap(d, head, head_font, col_w - 40)
            if len(lines) <= 2:
                break
        if len(lines) > 2:
            lines = [lines[0], _fit(d, " ".join(lines[1:]), head_font, col_w - 40)]
        step = hsize + 10
        box_h = 24 + step * 2
        d.rounded_rectangle((x0, vy, x0 + col_w, vy + box_h), radius=14, fill=colour)
        for j, line in enumerate(lines):
            d.text((x0 + 20, vy + 12 + step * j), line, font=head_font, fill=(255, 255, 255))
        info = f"{s.name}  ·  {s.width}x{s.height} {s.format or ''}".strip()
        d.text(
            (x0 + 4, vy + box_h + 12),
            _fit(d, info, _font(24), col_w),
            font=_font(24),
            fill=(170, 170, 180),
        )

    # the message band
    band_top = 858
    d.rectangle((0, band_top, W, H), fill=_BAND_BG)
    d.text(
        (margin, band_top + 22),
        c.message_title + ".",
        font=_font(54),
        fill=_BAND_FG,
        stroke_width=1,
        stroke_fill=_BAND_FG,
    )
    size = 28
    while True:
        body_font = _font(size)
        lines = _wrap(d, c.message, body_font, W - 2 * margin)
        if len(lines) * (size + 8) <= H - band_top - 100 or size <= 18:
            break
        size -= 2
    for j, line in enumerate(lines[: max(1, (H - band_top - 100) // (size + 8))]):
        d.text((margin, band_top + 94 + j * (size + 8)), line, font=body_font, fill=_BAND_FG)

    return canvas, {"size": (W, H), "background": POSTER_BG, "boxes": boxes}


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except Exception:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(d: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if d.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _fit(d: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if d.textlength(text, font=font) <= width:
        return text
    while text and d.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


# --- views ------------------------------------------------------------------------------------

_C2PA_FIELDS = (
    ("state", "State"),
    ("message", "Meaning"),
    ("validation_state", "c2pa says"),
    ("status_codes", "Failure codes"),
    ("signer", "Signer"),
    ("issuer", "Issuer"),
    ("signed_time", "Signed at"),
    ("actions", "Actions"),
    ("digital_source_type", "Digital source type"),
    ("generator", "Generator"),
    ("claim_generator", "Claim generator"),
    ("title", "Title"),
    ("ingredients", "Ingredients"),
    ("soft_binding", "Soft binding"),
    ("remote_url", "Remote manifest"),
)


def _report_view(
    report: dict,
    *,
    image_path: str | Path | None = None,
    image: Image.Image | None = None,
    preview: int = PREVIEW_SIDE,
    image_data: bytes | None = None,
) -> dict[str, Any]:
    """``image_data``: an already encoded preview file (e.g. a labelled one), embedded as is."""
    report = report or {}
    file = str(report.get("file") or image_path or "")
    notes: list[str] = [
        _text(n) for n in (report.get("notes") or []) if isinstance(n, (str, int, float))
    ]
    image_uri = None
    if image is None:
        src = image_path or file
        if src:
            try:
                image = load_image(src, max_side=preview).image
            except ImageError as e:
                notes.append(f"No preview: {e}")
    if image_data is not None:
        image_uri = _file_data_uri(image_data)
    elif image is not None:
        image_uri = _data_uri(image, "JPEG" if max(image.size) > 512 else "PNG", max_side=preview)
    signals = []
    for s in report.get("signals") or []:
        if not isinstance(s, dict):
            continue
        signals.append(
            {
                "source": _text(s.get("source", "?"), 40),
                "finding": _text(s.get("finding", ""), 80),
                "summary": _text(s.get("summary") or "", MAX_TEXT),
                "confidence": _confidence(s.get("confidence")),
                "details": _kv(s.get("details"), limit=12),
                "weight": _text(s.get("weight") or "", 20),
            }
        )
    c2pa = report.get("c2pa") if isinstance(report.get("c2pa"), dict) else None
    c2pa_rows = []
    if c2pa:
        for key, label in _C2PA_FIELDS:
            value = c2pa.get(key)
            if value in (None, "", [], {}):
                continue
            if key == "digital_source_type" and isinstance(value, str):
                value = _iptc_term(value)
            c2pa_rows.append((label, _flat(value)))
    marks = []
    for w in report.get("watermarks") or []:
        if isinstance(w, dict):
            marks.append(
                {
                    "scheme": _text(w.get("scheme", "?"), 40),
                    "found": bool(w.get("found")),
                    "payload": _text(w.get("payload") or "", 80),
                    "confidence": _confidence(w.get("confidence")),
                    "details": _kv(w.get("details"), limit=8),
                }
            )
    meta = report.get("metadata") if isinstance(report.get("metadata"), dict) else {}
    claims = [
        {
            "tool": _text(c.get("tool", "?"), 60),
            "kind": _text(c.get("kind", ""), 30),
            "where": _text(c.get("where", ""), 60),
            "ai": bool(c.get("ai")),
            "summary": _text(c.get("summary", ""), MAX_TEXT),
        }
        for c in (meta.get("claims") or [])
        if isinstance(c, dict)
    ][:MAX_ITEMS]
    shown = {k: v for k, v in meta.items() if k not in ("claims", "keys", "ai_claimed", "ai_tools")}
    ledger = report.get("ledger") if isinstance(report.get("ledger"), dict) else {}
    ledger_rows = []
    if ledger.get("checked") or ledger.get("matched"):
        ledger_rows.append(("Entries searched", _flat(ledger.get("entries", "?"))))
        ledger_rows.append(
            ("Match", f"yes, by {ledger.get('how')}" if ledger.get("matched") else "none")
        )
        check = ledger.get("content")
        if ledger.get("record_found") and isinstance(check, dict):
            ledger_rows.append(
                ("Content check", f"{check.get('outcome')}: {check.get('reason', '')}")
            )
        ledger_rows += [(f"entry.{k}", v) for k, v in _kv(ledger.get("entry"), limit=12)]
        for cand in (ledger.get("candidates") or [])[:3]:
            ledger_rows.append(("Candidate", _flat(cand)))
    image_info = report.get("image") if isinstance(report.get("image"), dict) else {}
    for n in image_info.get("notes") or []:
        notes.append(_text(n))
    verdict = verdict_of(report if report else None)
    return {
        "file": _text(file, 500),
        "name": Path(file).name if file else "image",
        "verdict": verdict,
        "kind_label": KIND_LABELS.get(verdict["kind"], ""),
        "image_uri": image_uri,
        "signals": signals,
        "c2pa": c2pa_rows,
        "c2pa_state": _text(c2pa.get("state", "")) if c2pa else "",
        "watermarks": marks,
        "claims": claims,
        "metadata": _kv(shown, limit=MAX_ITEMS),
        "ledger": ledger_rows,
        "notes": notes,
    }


def _single_trust_message(view: dict) -> str:
    """The verdict's own message (it already says "do not trust your eyes", worded for the
    outcome), or a fallback worded here for a report without one."""
    own = view["verdict"].get("message") or ""
    if "trust your eyes" in own.lower():
        return own
    fallback = {
        "labelled-ai": "A label says who made this file, not whether what it shows happened.",
        "ai-watermark": "A watermark says a generator made these pixels; its absence "
        "elsewhere proves nothing.",
        "recovered": "This copy lost its label; its origin was recovered from your own ledger.",
        "ai-metadata": "Only unsigned metadata claims an AI tool: anyone can write or remove it.",
        "credentials-not-ai": "These credentials record only what the signer chose to record.",
        "no-provenance": "A missing label proves nothing: most generators add none, and a "
        "screenshot strips any.",
        "tampered": "The file changed after it was signed: the credentials no longer describe it.",
        "unreadable": "This file could not be read, so nothing can be said about its origin.",
        "unknown": "This file was not verified: nothing is known about where it came from.",
    }.get(view["verdict"]["kind"], "")
    return " ".join(p for p in (own, fallback) if p) + (
        " Do not trust your eyes: generated images look like photographs."
    )


def _audit_trust_message(counts: Counter, total: int) -> str:
    none = counts.get("no-provenance", 0) + counts.get("credentials-not-ai", 0)
    bad = counts.get("tampered", 0)
    unreadable = counts.get("unreadable", 0) + counts.get("unknown", 0)
    ai = sum(counts.get(k, 0) for k in AI_KINDS)
    claims = counts.get("ai-metadata", 0)
    parts = []
    if none:
        parts.append(
            f"{none} of {total} file{'s' if total != 1 else ''} say nothing about being "
            "generated. That proves nothing about them: a generated image that has been shared "
            "once usually looks exactly like this."
        )
    if bad:
        parts.append(
            f"{bad} {'were' if bad != 1 else 'was'} changed after signing: what "
            f"{'they show' if bad != 1 else 'it shows'} now is not what was signed."
        )
    if ai:
        parts.append(
            f"{ai} carr{'y' if ai != 1 else 'ies'} evidence of being generated"
            + (f" ({claims} only as unsigned metadata, easily forged)" if claims else "")
            + ": a label says who made a file, not that what it shows happened."
        )
    if unreadable:
        parts.append(f"{unreadable} could not be analysed at all.")
    if not parts:
        parts.append("No files were checked.")
    parts.append("Nobody can sort these correctly by looking at them.")
    return " ".join(parts)


# --- small helpers ----------------------------------------------------------------------------

_URL_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*):(//)")


def _nolink(value: Any) -> Markup:
    """Escape text and write the slashes after any URL scheme as character references: the
    browser shows (and copies) the same URL, but the page's source holds no "https://", so no
    tool or reader mistakes a quoted URL for an asset to fetch."""
    text = str(escape("" if value is None else value))
    return Markup(_URL_SCHEME.sub(lambda m: f"{m.group(1)}:&#47;&#47;", text))


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    s = " ".join(printable(value).split()) if value is not None else ""
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _flat(value: Any, limit: int = MAX_TEXT) -> str:
    if isinstance(value, (list, tuple)):
        return _text(", ".join(_flat(v, 120) for v in value[:20]), limit)
    if isinstance(value, dict):
        return _text("; ".join(f"{k}: {_flat(v, 120)}" for k, v in list(value.items())[:12]), limit)
    if isinstance(value, float):
        return f"{value:.4g}"
    return _text(value, limit)


def _kv(obj: Any, *, limit: int = MAX_ITEMS, prefix: str = "", depth: int = 0) -> list:
    """A dict as (key, text) rows, nested dicts flattened one level with dotted keys."""
    rows: list[tuple[str, str]] = []
    if obj is None or obj == {} or obj == []:
        return rows
    if not isinstance(obj, dict):
        return [(prefix or "value", _flat(obj))]
    for k, v in obj.items():
        if len(rows) >= limit:
            rows.append(("…", f"{len(obj) - limit} more"))
            break
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and depth < 1 and v:
            rows.extend(_kv(v, limit=max(1, limit - len(rows)), prefix=key, depth=depth + 1))
        elif v not in (None, "", [], {}):
            rows.append((_text(key, 80), _flat(v)))
    return rows[: limit + 1]


def _confidence(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, (int, float)):
        return f"{float(value):.2f}" if math.isfinite(value) else ""
    return _text(value, 40)


def _iptc_term(uri: str) -> str:
    term = uri.rstrip("/").rsplit("/", 1)[-1]
    return f"{term} (IPTC digital source type)" if "iptc.org" in uri else uri


def _bits_reading(d: int) -> str:
    if d <= SAME_MAX_BITS:
        return "likely the same picture"
    if d >= DIFFERENT_MIN_BITS:
        return "different pictures"
    return "related (edit, crop, similar scene)"


def _data_uri(img: Image.Image | None, fmt: str = "PNG", *, max_side: int | None = None) -> str:
    if img is None:
        return ""
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(buf, "JPEG", quality=88)
        mime = "image/jpeg"
    else:
        img.save(buf, "PNG")
        mime = "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _file_data_uri(data: bytes) -> str:
    """An encoded image file as a data: URI, byte for byte (its metadata and labels kept)."""
    if data.startswith(b"\x89PNG"):
        mime = "image/png"
    elif data.startswith(b"\xff\xd8"):
        mime = "image/jpeg"
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        mime = "image/webp"
    else:
        raise ValueError("preview data is not a PNG, JPEG or WebP file")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _legend_css() -> str:
    from detectors.compare import CMAP_POS, CMAP_RGB

    stops = ", ".join(
        f"rgb({int(r)},{int(g)},{int(b)}) {p * 100:.0f}%"
        for p, (r, g, b) in zip(CMAP_POS, CMAP_RGB, strict=True)
    )
    return f"linear-gradient(to right, {stops})"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        import jinja2

        _ENV = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
        )
        _ENV.filters["t"] = _nolink
        _ENV.globals["kind_labels"] = KIND_LABELS
    return _ENV


def render_talk(
    *,
    story: dict,
    comparison: Comparison,
    stages: list[dict],
    previews: dict[str, bytes] | None = None,
) -> str:
    """The demo's talk page: the story in numbers, photo and fake side by side, what every
    check found before and after a simulated upload, and the closing message.

    ``stages``: [{"name", "describe", "report": Report.to_dict(), "image": path,
    "preview": encoded file (optional)}, ...]. ``previews``: {"A" | "B": encoded file} for the
    two sides. A given preview is embedded byte for byte (fakestudio passes labelled ones:
    previews of generated pictures are generated pictures too)."""
    c = comparison
    previews = previews or {}
    sides = []
    titles = ("A photo of the person", "The fake")
    for label, title, s in zip("AB", titles, (c.a, c.b), strict=True):
        view = _report_view(
            s.report or {}, image=s.image, preview=900, image_data=previews.get(label)
        )
        view.update(
            label=label,
            title=title,
            verdict=s.verdict,
            kind_label=KIND_LABELS.get(s.verdict["kind"], ""),
            caption=f"{s.name} · {s.width}x{s.height} {s.format or ''}",
        )
        sides.append(view)
    stage_views = [
        {
            "name": st["name"],
            "describe": st["describe"],
            "view": _report_view(
                st["report"],
                image_path=st.get("image"),
                preview=512,
                image_data=st.get("preview"),
            ),
        }
        for st in stages
    ]
    hashes = [
        {
            "name": {"phash": "pHash", "dhash": "dHash", "ahash": "aHash"}.get(k, k),
            "distance": v["distance"],
            "bits": v["bits"],
            "reading": _bits_reading(v["distance"]),
        }
        for k, v in c.hashes.items()
    ]
    last = stage_views[-1]["view"] if stage_views else sides[1]
    lost = [
        st["name"]
        for st in stages
        if (st["report"].get("verdict") or {}).get("outcome") == "no-provenance"
    ]
    lost_note = (
        f" The copy {' and '.join(lost)} lost every label, the invisible watermark included: "
        "watermarks survive some processing, not all."
        if lost
        else ""
    )
    message = (
        "The fake on this page was made in minutes from a handful of photos. It carried every "
        f"label fakestudio can give it; after a simulated upload the verdict read: "
        f"“{last['verdict'].get('headline', '')}”.{lost_note} Most generators add no label at "
        "all, and every platform strips metadata. A picture without a label proves nothing, and "
        "your eyes cannot tell: do not trust your eyes."
    )
    return (
        _env()
        .get_template("talk.html.j2")
        .render(
            page_title="Do not trust your eyes: a fake made in minutes",
            generated=_now(),
            story=story,
            sides=sides,
            stages=stage_views,
            c=c,
            hashes=hashes,
            trust_title=TRUST_TITLE,
            trust_message=message,
            general_note=GENERAL_NOTE,
        )
    )


def write_talk(path: str | Path, **kw) -> Path:
    return write_html(render_talk(**kw), path)
