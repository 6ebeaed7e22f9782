"""Reading any photo safely: size limits, decompression bombs, EXIF orientation, any mode to sRGB."""

from __future__ import annotations

import io
import re
import warnings

DEFAULT_MAX_PIXELS = 120_000_000  # decompression-bomb guard: larger than any camera sensor
MAX_FILE_BYTES = 512 * 1024 * 1024


class SkipPhoto(Exception):
    """This photo cannot be used; the message is the reason (no file names in it)."""


def scrub(message: str) -> str:
    """An exception message without object addresses (file names never reach it: we decode
    from memory)."""
    message = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "the data", message)
    message = " ".join(message.split())
    return message[:200] or "unknown error"


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    if not head or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def open_photo(data: bytes, suffix: str = "", max_pixels: int = DEFAULT_MAX_PIXELS):
    """Decode a photo's bytes to an upright RGB image, or raise SkipPhoto with the reason."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from detectors.image_io import open_formats

    if not data:
        raise SkipPhoto("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=open_formats())  # never EPS & co
    except Image.DecompressionBombError as e:
        raise SkipPhoto(f"too large: {scrub(str(e))} (decompression-bomb guard)") from e
    except UnidentifiedImageError as e:
        if suffix.lower() in (".heic", ".heif"):
            raise SkipPhoto(
                "unreadable: HEIC/HEIF needs the pillow-heif plugin; export the photo as JPEG"
            ) from e
        if _looks_like_text(data):
            raise SkipPhoto("unreadable: a text file, not an image") from e
        raise SkipPhoto("unreadable: not an image format Pillow can read") from e
    except Exception as e:  # a broken header is a skip, never an abort
        raise SkipPhoto(f"unreadable: {scrub(str(e))}") from e
    w, h = im.size
    if w * h > max_pixels:
        raise SkipPhoto(
            f"too large: {w}x{h} is {w * h / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP "
            "decompression-bomb guard"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except Exception as e:
        raise SkipPhoto(f"corrupt: {scrub(str(e))}") from e
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # malformed EXIF: keep the stored orientation
        pass
    return to_rgb(im)


def to_rgb(im):
    """Any Pillow mode -> 8-bit RGB: alpha composited on white, 16-bit scaled, CMYK and
    embedded ICC profiles converted to sRGB where LittleCMS can."""
    import numpy as np
    from PIL import Image

    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        if mode.startswith("I;16") or (mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0
        elif mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    icc = im.info.get("icc_profile")
    if icc and mode in ("RGB", "CMYK", "L"):
        converted = _icc_to_srgb(im, icc)
        if converted is not None:
            return converted
    return im if mode == "RGB" else im.convert("RGB")


def _icc_to_srgb(im, icc: bytes):
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception:  # an odd profile: fall back to a plain conversion
        return None
