"""Loading any image for analysis, safely: hostile or broken files give a reason, never a crash.

    rgb, info = load_image(path)            # rgb: (H, W, 3) uint8 ndarray, or None
    if rgb is None: print(info["reason"])   # "unreadable: truncated file (...)"

Guards, in order:

* only the formats in ``IMAGE_FORMATS`` are ever opened (Pillow is told so): never EPS/PS
  (Pillow would run Ghostscript to read it), nor any of Pillow's other plugins;
* files over ``MAX_FILE_BYTES`` (256 MB) are not opened;
* the header's pixel count is checked before any pixel is decoded: over ``MAX_PIXELS``
  (64 MP) the file is refused as a possible decompression bomb (Pillow's own
  ``DecompressionBombError``/``Warning`` are caught too, without touching Pillow's global
  ``MAX_IMAGE_PIXELS``);
* a PNG text chunk over Pillow's 1 MB ``MAX_TEXT_CHUNK`` makes ``Image.open`` fail: the file is
  re-read without its oversized text chunks, and the skip is noted;
* truncated or corrupt data, a text file named ``.png``, a zero-byte file: ``rgb`` is None and
  ``info["reason"]`` starts with ``"unreadable: "``;
* animations (GIF, APNG, animated WebP), multi-page TIFF, HEIF files with several pictures:
  the first frame / page / the primary picture is analysed; ``info["frames"]`` says how many
  there are (counted from the headers, no frame decoded) and a note says which was analysed.

Formats beyond Pillow's own, each through a maintained package installed with
``pip install 'fakestudio[formats]'`` (``detectors.media`` names them; without one, the
pixels are not checked and the report says why, credentials still are):

* HEIC/HEIF: ``pillow-heif`` (libheif), registered as a Pillow plugin on first use; AVIF is
  Pillow's own. Same header check, same reduction; libheif's own security limits stay on.
* DNG and other camera raws (NEF, ARW): ``rawpy`` (LibRaw) at half size (no demosaicing;
  the header's size is checked before the raw data is unpacked); without rawpy, a DNG whose
  first image Pillow reads (its embedded preview) is analysed instead, and a note says so.
  EXIF and XMP come from the TIFF structure (``info["exif"]``, ``info["xmp"]``).
* SVG: rendered by resvg only when it is self-contained, in a bounded child process
  (``detectors.svg``).

Analysis size: images over ``ANALYSIS_MAX_PIXELS`` (16.8 MP, 4096 x 4096) are decoded at an
integer fraction of their size (JPEG: by DCT scaling, without ever holding the full image;
others: decoded, then box-reduced) so a worker's memory stays bounded; ``info["scale"]`` is then
below 1 and ``info["notes"]`` says so. The watermark decoders need at least 256 x 256 pixels;
fakestudio's mark survives a reduction by exactly 2 (its decoder searches the half-size grid),
the Stable Diffusion marks do not survive any reduction.

EXIF orientation: ``transpose=True`` (the default) returns the image upright, as a viewer shows
it; pass ``transpose=False`` to get the pixels as stored (what watermark decoders and
perceptual hashes of the stored file need). ``info["orientation"]`` is the EXIF value either way.

Imports neither fakestudio nor torch.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_PIXELS = 64 * 1000 * 1000
ANALYSIS_MAX_PIXELS = 4096 * 4096
MIN_ANALYSIS_SIDE = 256  # below this the watermark decoders cannot work
MAX_SIDE = 65_535  # no format fakestudio meets goes beyond; a bigger header is hostile

#: The only Pillow formats opened for analysis: what the verifier supports. Never EPS (it runs
#: Ghostscript), nor the scientific and legacy formats nobody uploads.
IMAGE_FORMATS = (
    "PNG",
    "JPEG",
    "MPO",
    "WEBP",
    "GIF",
    "BMP",
    "DIB",
    "TIFF",
    "ICO",
    "JPEG2000",
    "AVIF",
    "HEIF",
)
SUPPORTED_TEXT = (
    "PNG, JPEG, WebP, GIF, BMP, TIFF, ICO, JPEG 2000, AVIF; HEIC/HEIF, DNG, SVG with "
    "fakestudio[formats]"
)
_POSTSCRIPT = (b"%!PS", b"\xc5\xd0\xd3\xc6")

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = {b"tEXt", b"zTXt", b"iTXt"}


def new_info(**kw: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "format": None,
        "mime": None,
        "width": None,  # as stored (before EXIF orientation)
        "height": None,
        "mode": None,
        "frames": None,
        "orientation": None,
        "transposed": False,
        "scale": 1.0,  # analysed size / stored size
        "analysed_width": None,
        "analysed_height": None,
        "notes": [],
        "reason": None,  # set when rgb is None: "unreadable: ..."
        "warnings": [],  # what Pillow warned about while opening (corrupt EXIF, ...)
    }
    info.update(kw)
    return info


def open_image(
    path: str | os.PathLike | None,
    info: dict | None = None,
    *,
    data: bytes | None = None,
    raw_half_size: bool = True,
) -> tuple[Image.Image | None, dict]:
    """Open (headers only) with every guard; returns (image, info). The caller closes it.

    ``data``: the file's bytes when the caller already read them (``path`` is then only used
    in messages). ``image`` is None when the file cannot be opened; ``info["reason"]`` says why.
    SVG and camera raws are decoded here already (rendered, demosaiced; ``raw_half_size``:
    LibRaw's fast half-size rendering, what the checks need; False for full size).
    """
    info = info if info is not None else new_info()
    if data is None:
        path = Path(path)
        try:
            st = path.stat()
        except OSError as e:
            return None, _fail(info, e.strerror or str(e))
        if not path.is_file():
            return None, _fail(info, "not a regular file")
        size = st.st_size
    else:
        size = len(data)
    if size == 0:
        return None, _fail(info, "empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        return None, _fail(
            info, f"file too large ({size // 2**20} MB > {MAX_FILE_BYTES // 2**20} MB)"
        )
    special = _special_format(path, data)
    if special is not None:
        return _open_special(special, path, data, info, raw_half_size)
    try:
        im = _open_guarded(io.BytesIO(data) if data is not None else path, info)
    except _TextTooLarge:
        try:
            raw = data if data is not None else Path(path).read_bytes()
            stripped, skipped = strip_large_png_text(raw)
            im = _open_guarded(io.BytesIO(stripped), info)
            info["notes"].append(
                f"skipped {skipped} PNG text chunk(s) over {PngImagePlugin.MAX_TEXT_CHUNK // 1024} KB"
            )
        except Exception as e:  # noqa: BLE001 - any failure is a reason, not a crash
            return None, _fail(info, _why(e))
    except UnidentifiedImageError:
        return None, _fail(info, _unidentified(path, data))
    except Exception as e:  # noqa: BLE001
        return None, _fail(info, _why(e))
    info["format"] = im.format
    info["mime"] = Image.MIME.get(im.format or "")
    info["width"], info["height"] = w, h = im.size
    info["mode"] = im.mode
    if w <= 0 or h <= 0 or w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        im.close()
        return None, _fail(
            info,
            f"decompression-bomb guard: the header claims {w}x{h} pixels "
            f"(limit {MAX_PIXELS // 10**6} MP, {MAX_SIDE} px a side)",
        )
    _describe(im, info)
    return im, info


def load_image(
    path: str | os.PathLike,
    *,
    transpose: bool = True,
    max_pixels: int = ANALYSIS_MAX_PIXELS,
    info: dict | None = None,
    image: Image.Image | None = None,
    close: bool = True,
) -> tuple[np.ndarray | None, dict]:
    """Decode the first frame as an RGB uint8 array (H, W, 3), or (None, info with a reason).

    ``max_pixels``: larger images are decoded at 1/k of their size (integer k) and the info says
    so. ``image``: an already opened image from ``open_image`` (closed here unless ``close`` is
    False: after a load, a PNG's info also holds the text chunks that follow the pixel data).
    Never raises for a bad file.
    """
    if image is None:
        image, info = open_image(path, info)
        if image is None:
            return None, info
    info = info if info is not None else new_info()
    try:
        return _decode(image, info, transpose, max_pixels)
    except MemoryError:
        return None, _fail(info, "out of memory while decoding")
    except Exception as e:  # noqa: BLE001
        return None, _fail(info, _why(e))
    finally:
        if close:
            image.close()


def reduce_factor(width: int, height: int, max_pixels: int = ANALYSIS_MAX_PIXELS) -> int:
    """The smallest integer k such that (width/k) * (height/k) <= max_pixels."""
    if width * height <= max_pixels:
        return 1
    return max(2, math.ceil(math.sqrt(width * height / max_pixels)))


def strip_large_png_text(data: bytes, limit: int | None = None) -> tuple[bytes, int]:
    """``data`` without the PNG text chunks whose (decompressed) text exceeds ``limit``."""
    limit = PngImagePlugin.MAX_TEXT_CHUNK if limit is None else limit
    if not data.startswith(_PNG_SIG):
        raise ValueError("not a PNG file")
    out, pos, skipped = [data[:8]], 8, 0
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        chunk = data[pos:end]
        if ctype in _PNG_TEXT and (length > limit or _inflated_over(ctype, chunk[8:-4], limit)):
            skipped += 1
        else:
            out.append(chunk)
        pos = end
        if ctype == b"IEND":
            break
    return b"".join(out), skipped


# --- internals ------------------------------------------------------------------------------


class _TextTooLarge(Exception):
    pass


def _open_guarded(source, info: dict) -> Image.Image:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return Image.open(source, formats=open_formats())
        except Image.DecompressionBombError as e:
            raise _Refused(f"decompression-bomb guard: {e}") from None
        except ValueError as e:
            if "MAX_TEXT_CHUNK" in str(e) or "Too much memory used in text chunks" in str(e):
                raise _TextTooLarge(str(e)) from None
            raise
        finally:
            # "Corrupt EXIF data", "Tag data larger than file" ...: Pillow parses a JPEG's EXIF
            # while opening it; metadata.py reports these as problems
            for w in caught[:10]:
                if not issubclass(w.category, Image.DecompressionBombWarning):
                    info.setdefault("warnings", []).append(" ".join(str(w.message).split())[:200])


class _Refused(Exception):
    pass


RAW_FORMATS = ("DNG", "NEF", "ARW")


def _special_format(path, data: bytes | None):
    """The ``detectors.media`` type of formats Pillow does not decode itself (SVG, camera
    raws), else None."""
    from detectors.media import HEAD_BYTES, identify

    if data is not None:
        head = data[:HEAD_BYTES]
    else:
        try:
            with open(path, "rb") as fh:
                head = fh.read(HEAD_BYTES)
        except OSError:
            return None
    mt = identify(head, path)
    if mt is not None and (mt.name == "SVG" or mt.name in RAW_FORMATS):
        return mt
    return None


def _open_special(
    mt, path, data: bytes | None, info: dict, raw_half_size: bool = True
) -> tuple[Image.Image | None, dict]:
    """SVG (rendered when safe) and camera raws (decoded by rawpy, else their embedded
    preview): an RGB(A) Pillow image of the pixels, already decoded, with the header guards."""
    info["format"], info["mime"] = mt.name, mt.mime
    try:
        raw = data if data is not None else Path(path).read_bytes()
    except OSError as e:
        return None, _fail(info, e.strerror or str(e))
    try:
        if mt.name == "SVG":
            im = _render_svg(raw, info)
        else:
            im = _open_raw(mt.name, raw, info, raw_half_size)
    except MemoryError:
        return None, _fail(info, "out of memory while decoding")
    except Exception as e:  # noqa: BLE001 - any failure is a reason, not a crash
        return None, _fail(info, _why(e))
    if im is None:
        return None, info
    info["width"], info["height"] = im.size
    info["mode"] = im.mode
    _describe(im, info)
    return im, info


def _render_svg(raw: bytes, info: dict) -> Image.Image | None:
    from detectors.svg import render_svg

    png, why = render_svg(raw)
    if png is None:
        _fail(info, f"SVG {why}")
        return None
    im = Image.open(io.BytesIO(png), formats=["PNG"])
    w, h = im.size
    if w * h > MAX_PIXELS:  # the renderer's box keeps it far below; belt and braces
        raise _Refused(f"decompression-bomb guard: the SVG renders at {w}x{h} pixels")
    im.load()
    info["decoder"] = "rendered by resvg"
    info["notes"].append(f"SVG rendered by resvg at {w}x{h} px (no external resources)")
    return im


def _open_raw(name: str, raw: bytes, info: dict, half_size: bool = True) -> Image.Image | None:
    """A camera raw's pixels: rawpy (LibRaw) at half size, else the first image Pillow reads
    in its TIFF structure (a DNG's embedded preview). EXIF and XMP from the TIFF structure."""
    from detectors.media import RAWPY

    im: Image.Image | None = None
    if RAWPY.available:
        rgb = _decode_raw(raw, half_size)
        im = Image.fromarray(rgb, "RGB")
        info["decoder"] = "decoded by rawpy (LibRaw)"
        info["notes"].append(
            f"{name} raw data decoded by rawpy (LibRaw): {im.width}x{im.height} px"
        )
    else:
        try:
            im = _open_guarded(io.BytesIO(raw), info)
            w, h = im.size
            if w * h > MAX_PIXELS or w > MAX_SIDE or h > MAX_SIDE:
                raise _Refused(f"decompression-bomb guard: the preview claims {w}x{h} pixels")
            im.load()
        except _Refused:
            raise
        except Exception:  # noqa: BLE001 - no preview Pillow reads
            _fail(
                info,
                f"{name} pixels need rawpy (LibRaw): {RAWPY.install_hint()}",
            )
            return None
        info["decoder"] = "its embedded preview, decoded by Pillow"
        info["notes"].append(
            f"{name}: its embedded preview ({im.width}x{im.height}) is analysed, not the raw "
            f"data ({RAWPY.install_hint()} to decode it)"
        )
    exif = Image.Exif()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exif.load(raw)
            xmp = exif.get(700)
        except Exception:  # noqa: BLE001 - malformed TIFF tags: metadata.py reports it
            xmp = None
    im.info["exif"] = raw
    if isinstance(xmp, (bytes, bytearray)):
        im.info["xmp"] = bytes(xmp)
    return im


def _decode_raw(raw: bytes, half_size: bool = True) -> np.ndarray:
    import rawpy

    r = rawpy.RawPy()
    try:
        r.open_buffer(io.BytesIO(raw))
        w, h = int(r.sizes.raw_width), int(r.sizes.raw_height)
        if w <= 0 or h <= 0 or w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
            raise _Refused(
                f"decompression-bomb guard: the raw header claims {w}x{h} pixels "
                f"(limit {MAX_PIXELS // 10**6} MP, {MAX_SIDE} px a side)"
            )
        r.unpack()
        rgb = r.postprocess(half_size=half_size, use_camera_wb=True, output_bps=8, user_flip=0)
    finally:
        r.close()
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def open_formats() -> list[str]:
    Image.init()  # registers the plugins; only those named in IMAGE_FORMATS are tried
    _register_heif()
    return [f for f in IMAGE_FORMATS if f in Image.OPEN]


_heif_registered: bool | None = None


def _register_heif() -> bool:
    """pillow-heif's Pillow plugin ("HEIF"), once, when installed: HEIC/HEIF pictures only
    (no thumbnails, depth or auxiliary images are read)."""
    global _heif_registered
    if _heif_registered is None:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            _heif_registered = True
        except Exception:  # noqa: BLE001 - not installed, or an incompatible build
            _heif_registered = False
    return _heif_registered


def _unidentified(path, data: bytes | None) -> str:
    try:
        if data is not None:
            head = data[:8]
        else:
            with open(path, "rb") as fh:
                head = fh.read(8)
    except OSError:
        head = b""
    if head.startswith(_POSTSCRIPT):
        return "PostScript/EPS is never opened (reading it would run Ghostscript)"
    return f"not an image in a format the verifier reads ({SUPPORTED_TEXT}), or not an image at all"


def exif_of(im: Image.Image) -> Image.Exif:
    """The image's EXIF without decoding pixels (Pillow's PNG ``getexif`` loads the whole image
    to look for an eXIf chunk after the pixel data; here a PNG's EXIF is read only when its
    chunk came first, or after the caller loaded the image). May warn or raise on bad EXIF."""
    if im.format == "PNG" and "exif" not in im.info:
        return Image.Exif()
    return im.getexif()


def _describe(im: Image.Image, info: dict) -> None:
    info["frames"] = _frames(im)
    if info["frames"] > 1:
        n = info["frames"]
        if im.format == "TIFF":
            info["notes"].append(f"multi-page TIFF ({n} pages): the first page is analysed")
        elif im.format == "HEIF":
            info["notes"].append(f"{n} pictures in the file: the primary picture is analysed")
        else:
            info["notes"].append(f"animated ({n} frames): the first frame is analysed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            orientation = exif_of(im).get(0x0112)
        info["orientation"] = int(orientation) if orientation is not None else None
    except Exception:  # noqa: BLE001 - malformed EXIF: metadata.py reports it
        info["orientation"] = None
    if info["orientation"] not in (None, *range(1, 9)):
        info["orientation"] = None


def _frames(im: Image.Image) -> int:
    """Frame count without decoding any frame (Pillow walks GIF block headers only)."""
    try:
        if not getattr(im, "is_animated", False):
            return 1
        return max(1, int(im.n_frames))
    except Exception:  # noqa: BLE001
        return 1


def _decode(im: Image.Image, info: dict, transpose: bool, max_pixels: int):
    w, h = im.size
    k = reduce_factor(w, h, max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if k > 1 and im.format == "JPEG":
            # DCT scaling (1/2, 1/4 or 1/8): the full size is never held in memory
            im.draft("RGB", (max(1, w // k), max(1, h // k)))
        if getattr(im, "is_animated", False):
            im.seek(0)
        im.load()
        frame = im if im.mode in ("RGB", "L") else _to_rgb(im)
        k_left = reduce_factor(frame.width, frame.height, max_pixels)
        if k_left > 1:
            frame = frame.reduce(k_left)
        if frame.mode != "RGB":
            frame = frame.convert("RGB")
        aw, ah = frame.size  # as stored, at the analysed scale
        orientation = info.get("orientation")
        if transpose and orientation in range(2, 9):
            frame = _apply_orientation(frame, orientation)
            info["transposed"] = True
        rgb = np.asarray(frame, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"unexpected pixel layout {rgb.shape}")
    info["analysed_width"], info["analysed_height"] = aw, ah
    info["scale"] = round(aw / w, 6) if w else 1.0
    if (aw, ah) != (w, h):
        info["notes"].append(
            f"analysed at {aw}x{ah} ({info['scale']:g} of {w}x{h}) to bound memory: "
            "fakestudio's watermark survives only a 1/2 reduction, the Stable Diffusion marks none"
        )
    if aw * ah < MIN_ANALYSIS_SIDE**2:
        info["notes"].append(
            f"{aw}x{ah} is too small for the invisible watermarks "
            f"(they need {MIN_ANALYSIS_SIDE}x{MIN_ANALYSIS_SIDE} pixels)"
        )
    return rgb, info


def _apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }[orientation]
    return im.transpose(method)


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB for any mode: alpha composited on white, palettes expanded, 16-bit scaled."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(a * (255.0 / top), 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float64))
        lo, hi = float(a.min(initial=0)), float(a.max(initial=1))
        a = (a - lo) / (hi - lo or 1.0) * 255.0
        return Image.fromarray(a.astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def _inflated_over(ctype: bytes, body: bytes, limit: int) -> bool:
    """Whether a zTXt/iTXt chunk's compressed text would inflate beyond ``limit``."""
    try:
        if ctype == b"zTXt":
            comp = body.split(b"\0", 1)[1][1:]
        elif ctype == b"iTXt":
            keyword, rest = body.split(b"\0", 1)
            if not rest or rest[0] != 1:
                return False
            comp = rest[2:].split(b"\0", 2)[2]
        else:
            return False
        d = zlib.decompressobj()
        d.decompress(comp, limit + 1)
        return len(d.unconsumed_tail) > 0
    except (IndexError, zlib.error):
        return False


def _fail(info: dict, why: str) -> dict:
    info["reason"] = "unreadable: " + " ".join(str(why).split())[:300]
    return info


def _why(e: BaseException) -> str:
    if isinstance(e, _Refused):
        return str(e)
    if isinstance(e, UnidentifiedImageError):
        return "not an image Pillow can identify (wrong extension, or not an image at all)"
    msg = str(e)
    if isinstance(e, OSError) and "truncated" in msg:
        return f"truncated file ({msg})"
    if isinstance(e, (EOFError, struct.error)):
        return f"truncated or corrupt data ({type(e).__name__}: {msg or 'unexpected end'})"
    if isinstance(e, SyntaxError):
        return f"corrupt file ({msg})"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__
