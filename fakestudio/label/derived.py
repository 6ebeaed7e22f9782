"""Pictures made of shown images: the compare poster and the talk page's previews.

They contain generated pixels (a fake, side by side with a photo; a preview of a fake), so they
leave through the labeller like any output: watermark, XMP, a signed manifest naming the shown
images as ingredients, a ledger row.

* Poster: a composite. When a shown image is AI-generated (its verdict is one of
  ``detectors.compare.AI_KINDS``), it is watermarked and signed as IPTC
  ``compositeWithTrainedAlgorithmicMedia`` with each shown image a ``componentOf`` ingredient
  (``c2pa.placed``). When none is, nothing in it is known to be generated: it is signed as a
  plain ``composite`` with the same ingredients and no watermark (fakestudio's watermark means
  "generated", and would be a false claim there).
* Preview: a resized copy of one generated picture: ``c2pa.opened`` of it (``parentOf``) +
  ``c2pa.resized``, ``trainedAlgorithmicMedia``, watermarked.

Identifiers derive from the shown files' bytes, so the same poster or preview gets the same
one again. Ingredient titles and ledger rows hold file names, never paths.
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from detectors.c2pa import TRAINED_ALGORITHMIC_MEDIA
from detectors.files import atomic_write
from detectors.watermarks import ours
from fakestudio import __version__
from fakestudio.errors import UserError
from fakestudio.label.identity import ensure_identity
from fakestudio.label.labeller import (
    FORMATS,
    MIN_SIDE,
    Description,
    LabelOptions,
    add_to_ledger,
    label_pixels,
    write_output,
)
from fakestudio.label.manifest import (
    COMPOSITE,
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    Ingredient,
    build_derived_manifest,
    sign_bytes,
)
from fakestudio.record import GENERATOR_NAME

SOFTWARE = f"{GENERATOR_NAME} {__version__}"
# formats c2pa reads ingredients from (others are shown but not recorded as ingredients)
_INGREDIENT_MIMES = {
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/gif",
    "image/tiff",
    "image/avif",
    "image/heic",
}
PREVIEW_JPEG_OVER = 512  # previews larger than this are JPEG, as the HTML reports embed them


def write_poster(comparison, path: Path, *, ledger_path: Path | None = None) -> dict:
    """Write the compare poster (``detectors.report.html.poster_image``) labelled; return a
    summary: {"path", "labelled" (watermarked as AI), "watermark", "ingredients"}."""
    from detectors.compare import AI_KINDS
    from detectors.report.html import poster_image

    canvas, _layout = poster_image(comparison)
    sides = [("a", comparison.a), ("b", comparison.b)]
    ingredients = [
        ing
        for key, side in sides
        if (ing := _ingredient(Path(side.path), f"shown-{key}", "componentOf")) is not None
    ]
    ai = any(side.verdict.get("kind") in AI_KINDS for _, side in sides)
    ids = [i.label for i in ingredients]
    path = Path(path)
    if not ai:
        manifest = build_derived_manifest(
            None, title=path.name, source_type=COMPOSITE, components=ids
        )
        buf = io.BytesIO()
        canvas.save(buf, "PNG")
        data = sign_bytes(buf.getvalue(), "image/png", manifest, ensure_identity(), ingredients)
        atomic_write(path, data)
        return {"path": str(path), "labelled": False, "watermark": None, "ingredients": ids}

    payload = _payload(b"poster", *(i.data for i in ingredients))
    opts = LabelOptions(fmt="png", ledger_path=ledger_path)
    out = label_pixels(
        canvas,
        payload,
        opts,
        Description(SOFTWARE),
        lambda marks: build_derived_manifest(
            marks,
            title=path.name,
            source_type=COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
            components=ids,
        ),
        ingredients,
    )
    written = write_output(
        out, path, opts, created=_now(), record=_record("poster", [i.title for i in ingredients])
    )
    return {
        "path": str(written.path),
        "labelled": True,
        "watermark": written.payload,
        "ingredients": ids,
    }


def labelled_preview(
    source: Path,
    image: Image.Image,
    max_side: int,
    *,
    ledger_path: Path | None = None,
    where: str = "page",
) -> bytes:
    """A labelled preview (at most max_side, PNG or JPEG as the reports embed them) of the
    generated picture `image` read from `source`; recorded in the ledger as shown in `where`."""
    im = image.convert("RGB")
    if max(im.size) > max_side:
        im = im.copy()
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if min(im.size) < MIN_SIDE:  # a small copy (a 256 px picture's upload at half size) is
        k = MIN_SIDE / min(im.size)  # shown enlarged, big enough to carry the watermark
        im = im.resize((round(im.width * k), round(im.height * k)), Image.Resampling.LANCZOS)
    fmt = "jpeg" if max(im.size) > PREVIEW_JPEG_OVER else "png"
    ing = _ingredient(Path(source), "original", "parentOf")
    ingredients = [ing] if ing is not None else []
    payload = _payload(b"preview", str(max_side).encode(), Path(source).read_bytes())
    name = f"preview of {Path(source).name}"
    opts = LabelOptions(fmt=fmt, ledger_path=ledger_path)
    out = label_pixels(
        im,
        payload,
        opts,
        Description(SOFTWARE),
        lambda marks: build_derived_manifest(
            marks,
            title=name,
            mime=FORMATS[fmt],
            source_type=TRAINED_ALGORITHMIC_MEDIA,
            parent=ing.label if ing else None,
            edits=["c2pa.resized"],
        ),
        ingredients,
    )
    file_name = f"{Path(where).name} ({name})"
    add_to_ledger(out, file_name, opts, created=_now(), record=_record("preview", [name]))
    return out.data


def _ingredient(path: Path, label: str, relationship: str) -> Ingredient | None:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        with Image.open(io.BytesIO(data)) as im:
            mime = Image.MIME.get(im.format or "")
    except Exception:  # noqa: BLE001 - an unreadable file was already reported by compare
        return None
    if mime not in _INGREDIENT_MIMES:
        return None
    return Ingredient(path.name, data, mime, relationship, label)


def _payload(kind: bytes, *parts: bytes) -> str:
    h = hashlib.sha256(b"fakestudio-derived-v1|" + kind)
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return ours.payload_from_fingerprint(h.digest())


def _record(kind: str, shows: list[str]) -> dict:
    return {"software": SOFTWARE, "kind": kind, "shows": shows, "record_prompt": False}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
