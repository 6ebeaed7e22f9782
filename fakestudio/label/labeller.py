"""The labeller: the only way a generated image leaves fakestudio.

    pixels -> invisible watermark -> visible badge (optional) -> XMP + parameters/EXIF
           -> C2PA manifest signed -> temp file + atomic rename -> ledger row

There is no switch to turn the invisible labels off. Every metadata chunk is written before
signing: any byte changed after the C2PA signature would read as tampered.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from detectors.files import atomic_write, probe_writable
from detectors.fingerprint import phash_hex, sha256_bytes
from detectors.ledger import Ledger, LedgerEntry
from detectors.watermarks import ours
from fakestudio.errors import UserError
from fakestudio.label.badge import add_badge
from fakestudio.label.identity import Identity, ensure_identity
from fakestudio.label.manifest import build_manifest, sign_bytes
from fakestudio.label.xmp import xmp_packet
from fakestudio.record import GenerationRecord

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
MIN_SIDE = 256  # the watermark codecs refuse anything smaller
LOSSLESS = 101  # a quality value meaning "lossless" (WebP) / "best" (JPEG)
EXIF_SOFTWARE, EXIF_IFD, EXIF_USER_COMMENT = 0x0131, 0x8769, 0x9286


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


def label(image: Image.Image, record: GenerationRecord, opts: LabelOptions) -> Labelled:
    """Watermark, badge, describe and sign `image`; return the signed bytes (nothing written)."""
    fmt = check_format(opts.fmt)
    rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise UserError(
            f"image is {w}x{h}: the invisible watermark needs at least {MIN_SIDE}x{MIN_SIDE}"
        )
    payload = ours.payload_from_fingerprint(record.fingerprint())
    # normal strength, or twice it where the picture's texture would drown the mark on upload
    marked, _strength = ours.embed_for_upload(rgb, payload)
    pixels = Image.fromarray(marked)
    if opts.badge:
        pixels = add_badge(pixels)
    encoded = _encode(pixels, record, payload, fmt, opts.quality)
    if fmt != "png" and not _mark_survives(encoded, payload):
        # Lossy chroma coding can drown the mark on very noisy pixels: fall back to the
        # format's lossless (WebP) or best (JPEG q100, 4:4:4) setting rather than write an
        # image whose invisible label cannot be read back.
        encoded = _encode(pixels, record, payload, fmt, LOSSLESS)
        if not _mark_survives(encoded, payload):
            raise UserError(f"the watermark does not survive {fmt} encoding of this image; use png")
    manifest = build_manifest(record, {"alg": ours.ALG, "payload": payload})
    identity = opts.identity or ensure_identity()
    data = sign_bytes(encoded, FORMATS[fmt], manifest, identity)
    return Labelled(data, payload, manifest, pixels)


def _encode(
    pixels: Image.Image, record: GenerationRecord, payload: str, fmt: str, quality: int
) -> bytes:
    xmp = xmp_packet(record.software, payload)
    params = record.a1111_parameters()
    buf = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", params)
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        pixels.save(buf, "PNG", pnginfo=info)
    else:
        exif = Image.Exif()
        exif[EXIF_SOFTWARE] = record.software
        exif.get_ifd(EXIF_IFD)[EXIF_USER_COMMENT] = b"UNICODE\0" + params.encode("utf-16-be")
        kind = "JPEG" if fmt == "jpeg" else "WEBP"
        if kind == "JPEG":
            extra = {"subsampling": 0, "quality": min(quality, 100)}  # 4:4:4: the mark is in chroma
        else:
            extra = {"lossless": True} if quality == LOSSLESS else {"quality": quality}
        pixels.save(buf, kind, exif=exif.tobytes(), xmp=xmp, **extra)
    return buf.getvalue()


def _mark_survives(encoded: bytes, payload: str) -> bool:
    with Image.open(io.BytesIO(encoded)) as im:
        return ours.decode(np.asarray(im.convert("RGB"))).payload == payload


def write_labelled(
    image: Image.Image, record: GenerationRecord, out_dir: Path, stem: str, opts: LabelOptions
) -> Written:
    """Label `image` and write it atomically to out_dir/stem.ext, then add the ledger row."""
    fmt = check_format(opts.fmt)
    out = label(image, record, opts)
    path = Path(out_dir) / f"{stem}{EXTENSIONS[fmt]}"
    atomic_write(path, out.data)
    sha = sha256_bytes(out.data)
    with Ledger(opts.ledger_path) as ledger:
        row = ledger.add(
            LedgerEntry(
                payload=out.payload,
                sha256=sha,
                phash=phash_hex(out.pixels),
                created=record.created,
                file_name=path.name,
                format=fmt,
                width=out.pixels.width,
                height=out.pixels.height,
                record=record.public(),
                manifest=out.manifest,
            )
        )
    return Written(path, out.payload, sha, row)


def check_writable(out_dir: Path, create: bool = True) -> Path:
    """Prove we can write in out_dir (made when `create`), before any slow work."""
    try:
        return probe_writable(out_dir, create)
    except OSError as e:
        raise UserError(f"{out_dir}: output folder is not writable ({e.strerror or e})") from None
