"""The reports the web API returns: exactly what `verify --json` and `compare --json` print for
the same file (fakestudio/commands/verify.py and compare.py build them the same way), with the
upload's own name where the CLI shows the path it was given, and never the temporary path
the server kept the bytes under.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

from fakestudio.web.config import WebConfig
from fakestudio.web.uploads import Upload

THUMB_SIDE = 256  # ingredient thumbnails are re-encoded at most this large
MAX_THUMBS = 12
MAX_THUMB_BYTES = 2 * 1024 * 1024
SHOWN_THUMB_STATES = ("trusted",)  # an untrusted signer's pictures are not shown


def verify_report(upload: Upload, cfg: WebConfig) -> dict:
    """`fakestudio verify FILE --json` for one uploaded file (same schema and fields)."""
    from detectors.verify import verify_image

    rep = verify_image(
        upload.path,
        trust_anchors=cfg.trust_anchors,
        use_ledger=cfg.use_ledger,
        registry=cfg.registry,
    ).to_dict()
    return scrub(rep, {str(upload.path): upload.name})


def compare_report(a: Upload, b: Upload, cfg: WebConfig):
    """(the Comparison, `fakestudio compare A B --json`'s dict) for two uploaded files.
    Raises detectors.compare.ImageError for a file that is not an image."""
    from detectors.compare import compare_images

    cmp = compare_images(a.path, b.path, trust_anchors=cfg.trust_anchors)
    d = cmp.to_dict()
    d["written"] = {}
    return cmp, scrub(d, {str(a.path): a.name, str(b.path): b.name})


def scrub(value: Any, names: dict[str, str]) -> Any:
    """`value` with every temporary path replaced by the upload's name (longest first)."""
    order = sorted(names, key=len, reverse=True)
    parents = {str(Path(p).parent) + os.sep: "" for p in names}

    def fix(s: str) -> str:
        for p in order:
            s = s.replace(p, names[p])
        for p in parents:
            s = s.replace(p, "")
        return s

    def walk(v):
        if isinstance(v, str):
            return fix(v)
        if isinstance(v, dict):
            return {(fix(k) if isinstance(k, str) else k): walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)


# --- what the pages show beside the report ----------------------------------------------------


def ingredient_thumbnails(upload: Upload, report: dict) -> dict:
    """The manifest's own thumbnail and its ingredients' thumbnails, re-encoded as small JPEG
    data URLs, when the signer is trusted; otherwise why they are hidden. Content Credentials
    Verify does the same: an untrusted signer's pictures could show anything."""
    c2pa = report.get("c2pa") or {}
    state = c2pa.get("state")
    out: dict[str, Any] = {"shown": False, "claim": None, "ingredients": [], "note": None}
    if state in (None, "absent"):
        return out
    if state not in SHOWN_THUMB_STATES:
        out["note"] = (
            "Thumbnails hidden: the signer is not one you trust, so the pictures its "
            "manifest carries could show anything."
        )
        return out
    try:
        out.update(_read_thumbnails(upload.path))
        out["shown"] = True
    except Exception as e:  # noqa: BLE001 - thumbnails are an extra; the report stands
        out["note"] = f"thumbnails not read ({type(e).__name__})"
    return out


def _read_thumbnails(path: Path) -> dict:
    import json

    import c2pa

    from detectors.c2pa import reader_settings, sniff_mime

    data = path.read_bytes()
    mime = sniff_mime(data[:32]) or "image/jpeg"
    settings = c2pa.Settings.from_dict(reader_settings())
    try:
        context = c2pa.Context(settings=settings)
    finally:
        settings.close()
    with c2pa.Reader(mime, io.BytesIO(data), context=context) as reader:
        store = json.loads(reader.json())
        active = (store.get("manifests") or {}).get(store.get("active_manifest")) or {}

        def thumb(ref) -> str | None:
            ident = (ref or {}).get("identifier") if isinstance(ref, dict) else None
            if not ident:
                return None
            buf = io.BytesIO()
            reader.resource_to_stream(ident, buf)
            return _data_url(buf.getvalue())

        claim = thumb(active.get("thumbnail"))
        ingredients = []
        for ing in (active.get("ingredients") or [])[:MAX_THUMBS]:
            ingredients.append(
                {
                    "title": str(ing.get("title") or "(untitled)")[:200],
                    "relationship": ing.get("relationship"),
                    "thumbnail": thumb(ing.get("thumbnail")),
                }
            )
    return {"claim": claim, "ingredients": ingredients}


def _data_url(raw: bytes) -> str | None:
    """A signer's thumbnail decoded under the usual guards and re-encoded (JPEG, small)."""
    if not raw or len(raw) > MAX_THUMB_BYTES:
        return None
    from PIL import Image

    from detectors import image_io

    im, info = image_io.open_image(None, data=raw)
    if im is None:
        return None
    try:
        rgb = im.convert("RGB")
    finally:
        im.close()
    rgb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def png_data_url(img) -> str | None:
    if img is None:
        return None
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def compare_maps(cmp) -> dict:
    """What the Compare page draws besides the JSON: the SSIM heat map (1 - SSIM per pixel),
    an absolute difference map (x4, at the SSIM size) and both spectra, as PNG data URLs.
    These are measurements of the two files, not pictures of anything: no label needed."""
    import numpy as np
    from PIL import Image

    diff = None
    if cmp.ssim_size is not None:
        size = tuple(cmp.ssim_size)
        a = np.asarray(cmp.a.image.resize(size, Image.Resampling.LANCZOS), dtype=np.int16)
        b = np.asarray(cmp.b.image.resize(size, Image.Resampling.LANCZOS), dtype=np.int16)
        diff = Image.fromarray(np.clip(np.abs(a - b) * 4, 0, 255).astype(np.uint8))
    return {
        "ssim": png_data_url(cmp.heatmap),
        "difference": png_data_url(diff),
        "spectrum_a": png_data_url(cmp.a.spectrum),
        "spectrum_b": png_data_url(cmp.b.spectrum),
    }


def poster_bytes(cmp) -> tuple[bytes, dict]:
    """The `compare --png` poster, written through the labeller (watermark and a manifest
    naming both shown images when one is AI-generated), as bytes."""
    import tempfile

    from fakestudio.label.derived import write_poster

    with tempfile.TemporaryDirectory(prefix="fakestudio-web-") as d:
        path = Path(d) / "poster.png"
        info = write_poster(cmp, path)
        data = path.read_bytes()
    info = {k: v for k, v in info.items() if k != "path"}
    return data, info


def verify_path(path: Path, cfg: WebConfig) -> dict:
    """`verify --json` of a file on this machine, shown under its bare name."""
    from detectors.verify import verify_image

    rep = verify_image(
        path, trust_anchors=cfg.trust_anchors, use_ledger=cfg.use_ledger, registry=cfg.registry
    ).to_dict(full=False)
    return scrub(rep, {str(path): Path(path).name})
