"""The labeller: the only way a generated image leaves fakestudio.

    pixels -> invisible watermarks -> visible badge (optional) -> XMP + parameters/EXIF
           -> C2PA manifest signed -> temp file + atomic rename -> ledger row

There is no switch to turn the invisible labels off. Every metadata chunk is written before
signing: any byte changed after the C2PA signature would read as tampered.

Each written file has its own identifier (the watermark payload, the ledger key): derived from
the generation record's fingerprint (the settings, seed included), the format and the badge
(``file_payload``), so the PNG, JPEG and WebP written from one seed are told apart when a
stripped copy is traced, while the same settings still give the same file, watermark included
(image i of a batch is the image of seed + i, as before; the index in the run is deliberately
not part of it). Files labelled before this (payload = the record fingerprint's first 5
bytes) verify as before: the decoders and the ledger look a payload up, never recompute it.

``label_pixels`` is the one path for pixels fakestudio did not generate itself (other
generators' outputs, posters, previews): same watermark, metadata, signing and ledger, with a
manifest and ingredients the caller describes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from detectors import content
from detectors.files import atomic_write, probe_writable
from detectors.fingerprint import phash_hex, sha256_bytes
from detectors.ledger import Ledger, LedgerEntry
from detectors.watermarks import durable, ours
from fakestudio.errors import UserError
from fakestudio.label.badge import add_badge
from fakestudio.label.identity import Identity, ensure_identity
from fakestudio.label.manifest import Ingredient, build_manifest, sign_bytes
from fakestudio.label.xmp import xmp_packet
from fakestudio.record import GenerationRecord

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
MIN_SIDE = 256  # the watermark codecs refuse anything smaller
LOSSLESS = 101  # a quality value meaning "lossless" (WebP) / "best" (JPEG)
EXIF_SOFTWARE, EXIF_IFD, EXIF_USER_COMMENT = 0x0131, 0x8769, 0x9286
_FILE_ID_KEY = b"fakestudio-output-v2"


@dataclass
class LabelOptions:
    fmt: str = "png"
    badge: bool = False
    quality: int = 95  # JPEG / WebP
    identity: Identity | None = None
    ledger_path: Path | None = None  # default: the user data directory


@dataclass
class Labelled:
    data: bytes  # the signed file
    payload: str  # watermark payload (hex)
    manifest: dict
    pixels: Image.Image  # the watermarked (and badged) pixels that were encoded


@dataclass
class Description:
    """What a file says about itself besides its watermark and manifest."""

    software: str  # XMP CreatorTool and EXIF Software
    parameters: str | None = None  # Automatic1111's `parameters` text (PNG chunk / UserComment)
    icc_profile: bytes | None = None  # kept so colours look the same as in the source


@dataclass
class Written:
    path: Path
    payload: str
    sha256: str
    ledger_id: int

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "watermark": self.payload,
            "sha256": self.sha256,
            "ledger_id": self.ledger_id,
        }


def check_format(fmt: str) -> str:
    fmt = fmt.lower().replace("jpg", "jpeg")
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose png, jpeg or webp")
    return fmt


def file_payload(record: GenerationRecord, fmt: str, badge: bool = False) -> str:
    """This written file's identifier (10 hex digits, the watermark payload and ledger key).

    Deterministic: the record's fingerprint (the settings, seed included), the format and the
    badge; so one seed's PNG, JPEG and WebP, or its badged and plain copies, each get their
    own, and the same settings give the same identifier again."""
    blob = b"|".join([record.fingerprint(), check_format(fmt).encode(), b"%d" % badge])
    return ours.payload_from_fingerprint(hashlib.sha256(_FILE_ID_KEY + blob).digest())


def label(image: Image.Image, record: GenerationRecord, opts: LabelOptions) -> Labelled:
    """Watermark, badge, describe and sign `image`; return the signed bytes (nothing written)."""
    payload = file_payload(record, opts.fmt, opts.badge)
    return label_pixels(
        image,
        payload,
        opts,
        Description(record.software, record.a1111_parameters()),
        lambda marks: build_manifest(record, marks),
    )


def label_pixels(
    image: Image.Image,
    payload: str,
    opts: LabelOptions,
    describe: Description,
    manifest_for: Callable[[list[dict]], dict],
    ingredients: Sequence[Ingredient] = (),
) -> Labelled:
    """The labeller's core for any pixels: watermark with `payload`, badge, describe, sign.

    `manifest_for(soft_bindings)` builds the manifest from the watermarks embedded
    ([{"alg", "payload"}, ...]); `ingredients` are signed into it."""
    fmt = check_format(opts.fmt)
    rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise UserError(
            f"image is {w}x{h}: the invisible watermark needs at least {MIN_SIDE}x{MIN_SIDE}"
        )
    marked, marks = watermark(rgb, payload)
    pixels = Image.fromarray(marked)
    if opts.badge:
        pixels = add_badge(pixels)
    encoded = _encode(pixels, describe, payload, fmt, opts.quality)
    if fmt != "png" and not _mark_survives(encoded, payload):
        # Lossy coding can drown the mark on very noisy pixels: fall back to the
        # format's lossless (WebP) or best (JPEG q100, 4:4:4) setting rather than write an
        # image whose invisible label cannot be read back.
        encoded = _encode(pixels, describe, payload, fmt, LOSSLESS)
        if not _mark_survives(encoded, payload):
            raise UserError(f"the watermark does not survive {fmt} encoding of this image; use png")
    manifest = manifest_for(marks)
    # what the picture is, signed with it: a label copied onto another picture is caught by
    # comparing that picture with this (detectors.content)
    manifest["assertions"].append(
        content.assertion(content.describe(np.asarray(pixels.convert("RGB"))))
    )
    identity = opts.identity or ensure_identity()
    data = sign_bytes(encoded, FORMATS[fmt], manifest, identity, ingredients)
    return Labelled(data, payload, manifest, pixels)


def watermark(rgb: np.ndarray, payload: str) -> tuple[np.ndarray, list[dict]]:
    """Embed the invisible mark; return the pixels and its soft binding(s).

    Since issue 24 a label carries one invisible mark, the durable one (``durable``: luma
    only, read blind after crops, rescaling, rotation, flips and colour edits, and matched
    against a known payload by ``ours.match_copy`` for the ledger and the registry). The
    first mark (``ours``, chroma) is no longer embedded: on top of the durable mark's 40.5 dB
    it took the label to 37.8 dB RGB PSNR on the bench pictures (34.4 worst) and showed as
    8 px colour blocks on smooth skies and dark water; at a strength that fits the budget it
    no longer survived an upload (``bench/label_visibility.py``, docs/watermark.md). Labels
    written before carry both marks; every decoder still reads both."""
    marked = durable.embed(rgb, payload)
    return marked, [{"alg": durable.ALG, "payload": payload}]


def _encode(
    pixels: Image.Image, describe: Description, payload: str, fmt: str, quality: int
) -> bytes:
    xmp = xmp_packet(describe.software, payload)
    params = describe.parameters
    icc = {"icc_profile": describe.icc_profile} if describe.icc_profile else {}
    buf = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        if params:
            info.add_text("parameters", params)
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        pixels.save(buf, "PNG", pnginfo=info, **icc)
    else:
        exif = Image.Exif()
        exif[EXIF_SOFTWARE] = describe.software
        if params:
            exif.get_ifd(EXIF_IFD)[EXIF_USER_COMMENT] = b"UNICODE\0" + params.encode("utf-16-be")
        kind = "JPEG" if fmt == "jpeg" else "WEBP"
        if kind == "JPEG":
            extra = {"subsampling": 0, "quality": min(quality, 100)}  # 4:4:4: the mark is in chroma
        else:
            extra = {"lossless": True} if quality == LOSSLESS else {"quality": quality}
        pixels.save(buf, kind, exif=exif.tobytes(), xmp=xmp, **extra, **icc)
    return buf.getvalue()


def _mark_survives(encoded: bytes, payload: str) -> bool:
    """Does the encoded file's mark read back blind, with its identifier?"""
    with Image.open(io.BytesIO(encoded)) as im:
        return durable.decode(np.asarray(im.convert("RGB"))).payload == payload


def write_labelled(
    image: Image.Image,
    record: GenerationRecord,
    out_dir: Path,
    stem: str,
    opts: LabelOptions,
) -> Written:
    """Label `image` and write it atomically to out_dir/stem.ext, then add the ledger row."""
    fmt = check_format(opts.fmt)
    out = label(image, record, opts)
    path = Path(out_dir) / f"{stem}{EXTENSIONS[fmt]}"
    return write_output(out, path, opts, created=record.created, record=record.public())


def write_output(
    out: Labelled, path: Path, opts: LabelOptions, *, created: str, record: dict
) -> Written:
    """Write a labelled file atomically to `path`, then add its ledger row (keyed by its own
    payload; `record`: the public description kept in the row, no path, no private prompt)."""
    path = Path(path)
    atomic_write(path, out.data)
    sha, row = add_to_ledger(out, path.name, opts, created=created, record=record)
    return Written(path, out.payload, sha, row)


def add_to_ledger(
    out: Labelled, file_name: str, opts: LabelOptions, *, created: str, record: dict
) -> tuple[str, int]:
    """The ledger row for a labelled file (also for one embedded elsewhere, e.g. a preview in
    a page); returns (sha256 of the file, row id)."""
    sha = sha256_bytes(out.data)
    with Ledger(opts.ledger_path) as ledger:
        row = ledger.add(
            LedgerEntry(
                payload=out.payload,
                sha256=sha,
                phash=phash_hex(out.pixels),
                created=created,
                file_name=file_name,
                format=check_format(opts.fmt),
                width=out.pixels.width,
                height=out.pixels.height,
                record=record,
                manifest=out.manifest,
            )
        )
    return sha, row


def check_writable(out_dir: Path, create: bool = True) -> Path:
    """Prove we can write in out_dir (made when `create`), before any slow work."""
    try:
        return probe_writable(out_dir, create)
    except OSError as e:
        raise UserError(f"{out_dir}: output folder is not writable ({e.strerror or e})") from None
