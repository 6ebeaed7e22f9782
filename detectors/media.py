"""What kind of media a file is, from its first bytes: the MIME type C2PA is asked with, and
which checks can run on it.

    mt = identify(data[:4096], "clip.mp4")   # MediaType(kind="video", mime="video/mp4", name="MP4")
    mt.kind      # "image", "video", "audio" or "document"
    decoder_for(mt)   # Decoder(name="PyAV", package="av", extra="video", available=True)

Content Credentials live in every format c2pa-python reads (pictures, video, audio, PDF), so
the verifier reads credentials from all of them and decodes pixels only where a maintained
library does (``DECODERS``); ``docs/formats.md`` has the table. Identification looks at the
bytes, never trusts an extension alone: an extension only tells apart formats that share a
container (a Nikon NEF and a TIFF). Everything here is a few comparisons on at most
``HEAD_BYTES`` bytes; nothing is decoded. Imports neither fakestudio nor torch, nor any of the
optional decoders (``available`` asks ``importlib.util.find_spec``).
"""

from __future__ import annotations

import importlib.util
import os
import struct
from dataclasses import dataclass

HEAD_BYTES = 4096  # enough for an XML prolog before <svg, a TIFF's first IFD in most files


@dataclass(frozen=True)
class MediaType:
    kind: str  # image | video | audio | document
    mime: str  # what C2PA is asked to read it as
    name: str  # short format name for reports: "HEIC", "MP4", "WAV", ...

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mime": self.mime, "name": self.name}


@dataclass(frozen=True)
class Decoder:
    """The package that decodes pixels of a format, and how to get it."""

    name: str  # what reports say decoded it
    package: str  # the import name
    extra: str  # fakestudio's optional-dependency group that installs it
    pip: str  # the PyPI name

    @property
    def available(self) -> bool:
        return _has(self.package)

    def install_hint(self) -> str:
        return f"pip install 'fakestudio[{self.extra}]' (or {self.pip})"


PILLOW_HEIF = Decoder("pillow-heif", "pillow_heif", "formats", "pillow-heif")
RAWPY = Decoder("rawpy", "rawpy", "formats", "rawpy")
RESVG = Decoder("resvg", "resvg_py", "formats", "resvg-py")
PYAV = Decoder("PyAV", "av", "video", "av")

#: Format name -> the optional decoder of its pixels (formats Pillow decodes need none).
DECODERS = {
    "HEIC": PILLOW_HEIF,
    "HEIF": PILLOW_HEIF,
    "DNG": RAWPY,
    "NEF": RAWPY,
    "ARW": RAWPY,
    "SVG": RESVG,
    "MP4": PYAV,
    "MOV": PYAV,
    "M4V": PYAV,
    "AVI": PYAV,
}

#: File extensions audit looks at (lower case), by kind. Others are identified by content.
EXTENSIONS = {
    "image": (
        ".png .apng .jpg .jpeg .jpe .jfif .webp .gif .bmp .tif .tiff .avif .heic .heif .hif "
        ".ico .jp2 .j2k .jpx .jpf .dng .nef .arw .svg .jxl"
    ).split(),
    "video": ".mp4 .m4v .mov .avi".split(),
    "audio": ".wav .mp3 .m4a .flac".split(),
    "document": [".pdf"],
}
MEDIA_EXTENSIONS = frozenset(e for exts in EXTENSIONS.values() for e in exts)

_RAW_BY_EXTENSION = {
    ".nef": MediaType("image", "image/x-nikon-nef", "NEF"),
    ".arw": MediaType("image", "image/x-sony-arw", "ARW"),
}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A "}
_TIFF_DNG_VERSION = 50706


def identify(data: bytes, name: str | os.PathLike | None = None) -> MediaType | None:
    """The media type of a file from its first bytes (``HEAD_BYTES`` are plenty; the whole
    file may be given), or None for bytes no C2PA-capable format starts with. ``name``: the
    file name, used only where the bytes cannot tell (camera raws built on TIFF)."""
    head = bytes(data[:HEAD_BYTES])
    ext = os.path.splitext(str(name or ""))[1].lower()
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaType("image", "image/png", "PNG")
    if head.startswith(b"\xff\xd8\xff"):
        return MediaType("image", "image/jpeg", "JPEG")
    if head[:4] in (b"GIF8",):
        return MediaType("image", "image/gif", "GIF")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(head, ext)
    if head[:4] == b"RIFF" and len(head) >= 12:
        form = head[8:12]
        if form == b"WEBP":
            return MediaType("image", "image/webp", "WEBP")
        if form == b"WAVE":
            return MediaType("audio", "audio/wav", "WAV")
        if form == b"AVI ":
            return MediaType("video", "video/avi", "AVI")
        return None
    if head[4:8] == b"ftyp":
        return _bmff(head)
    if head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n") or head.startswith(b"\xff\x0a"):
        return MediaType("image", "image/jxl", "JXL")
    if head.startswith(b"%PDF-"):
        return MediaType("document", "application/pdf", "PDF")
    if head.startswith(b"fLaC"):
        return MediaType("audio", "audio/flac", "FLAC")
    if head.startswith(b"ID3"):
        end = _id3_end(head)
        if bytes(data[end : end + 4]) == b"fLaC":
            return MediaType("audio", "audio/flac", "FLAC")  # c2pa-rs puts its ID3 tag first
        return MediaType("audio", "audio/mpeg", "MP3")
    if _mpeg_audio_frame(head):
        return MediaType("audio", "audio/mpeg", "MP3")
    if head.startswith(b"BM") and len(head) >= 26:
        return MediaType("image", "image/bmp", "BMP")
    if _is_svg(head):
        return MediaType("image", "image/svg+xml", "SVG")
    return None


def identify_file(path: str | os.PathLike) -> MediaType | None:
    """``identify`` on a regular file's first bytes (never opens a FIFO or a device)."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            head = os.read(fd, HEAD_BYTES)
            after = os.pread(fd, 4, _id3_end(head)) if head.startswith(b"ID3") else b""
        finally:
            os.close(fd)
        if after == b"fLaC":  # c2pa-rs puts its ID3 tag before a FLAC stream
            return MediaType("audio", "audio/flac", "FLAC")
    except OSError:
        return None
    return identify(head, path)


def decoder_for(mt: MediaType | None) -> Decoder | None:
    return DECODERS.get(mt.name) if mt else None


def versions() -> dict[str, str | None]:
    """Installed versions of the optional decoders (None: not installed)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dec in (PILLOW_HEIF, RAWPY, RESVG, PYAV):
        try:
            out[dec.pip] = metadata.version(dec.pip)
        except metadata.PackageNotFoundError:
            out[dec.pip] = None
    return out


# --- internals ------------------------------------------------------------------------------


def _has(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _bmff(head: bytes) -> MediaType:
    size = struct.unpack(">I", head[:4])[0]
    end = min(len(head), size if size >= 16 else 16)
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}
    brands = {major} | compatible
    if major in _AVIF_BRANDS or (major in _HEIF_BRANDS and brands & _AVIF_BRANDS):
        return MediaType("image", "image/avif", "AVIF")
    if major in _HEIC_BRANDS or (major in _HEIF_BRANDS and brands & _HEIC_BRANDS):
        return MediaType("image", "image/heic", "HEIC")
    if major in _HEIF_BRANDS:
        return MediaType("image", "image/heif", "HEIF")
    if major == b"qt  ":
        return MediaType("video", "video/quicktime", "MOV")
    if major in _AUDIO_BRANDS:
        return MediaType("audio", "audio/mp4", "M4A")
    if major == b"M4V ":
        return MediaType("video", "video/x-m4v", "M4V")
    return MediaType("video", "video/mp4", "MP4")


def _tiff(head: bytes, ext: str) -> MediaType:
    if ext in _RAW_BY_EXTENSION:
        return _RAW_BY_EXTENSION[ext]
    if _tiff_has_tag(head, _TIFF_DNG_VERSION) or ext == ".dng":
        return MediaType("image", "image/x-adobe-dng", "DNG")
    return MediaType("image", "image/tiff", "TIFF")


def _tiff_has_tag(head: bytes, tag: int) -> bool:
    """Whether the first IFD (when it lies within ``head``) holds ``tag``."""
    order = "<" if head[:2] == b"II" else ">"
    try:
        ifd = struct.unpack(order + "I", head[4:8])[0]
        count = struct.unpack(order + "H", head[ifd : ifd + 2])[0]
        for i in range(min(count, 1000)):
            e = ifd + 2 + 12 * i
            if e + 2 > len(head):
                return False
            if struct.unpack(order + "H", head[e : e + 2])[0] == tag:
                return True
    except struct.error:
        return False
    return False


def _id3_end(head: bytes) -> int:
    """Where the audio after an ID3v2 tag starts (its syncsafe size, a footer when flagged)."""
    if len(head) < 10:
        return len(head)
    b = head[6:10]
    size = (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)
    return 10 + size + (10 if head[5] & 0x10 else 0)


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG-1/2 audio frame header (frame sync, a valid layer, bit rate and sample rate)."""
    if len(head) < 4 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _is_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if not text.startswith(b"<"):
        return False
    return b"<svg" in text[:HEAD_BYTES]


# --- what ran: the report's ``checks`` object ----------------------------------------------------

RAN, NOT_APPLICABLE, NOT_RUN = "ran", "not applicable", "not run"
CHECKS = ("c2pa", "pixels", "watermarks", "metadata", "ledger", "registry")


def status(word: str, detail: str | None = None) -> str:
    """One ``checks`` value: ``ran``, ``not applicable`` or ``not run``, then ``: detail``."""
    return f"{word}: {detail}" if detail else word


def skipped_pixels(mt: MediaType | None) -> str | None:
    """Why a file's pixels are not looked at by design (None: they are, or should be):
    audio and documents have none we check; a format whose decoder is not installed."""
    if mt is None:
        return None
    if mt.kind == "audio":
        return status(NOT_APPLICABLE, f"audio ({mt.name}) has no pixels")
    if mt.kind == "document":
        return status(NOT_APPLICABLE, f"a document ({mt.name}): its pages are not rendered")
    if mt.name == "JXL":
        return status(NOT_RUN, "no JPEG XL decoder is used")
    dec = decoder_for(mt)
    if dec is not None and not dec.available:
        what = "video frames" if mt.kind == "video" else f"{mt.name} pixels"
        return status(NOT_RUN, f"{what} need {dec.name}: {dec.install_hint()}")
    return None


def watermark_status(pixels: str, watermarks: list[dict], frames: list[float] | None) -> str:
    """The watermarks check from the pixels' status and the detectors' results."""
    if not pixels.startswith(RAN):
        return pixels
    if watermarks and all((w.get("details") or {}).get("error") for w in watermarks):
        return status(NOT_RUN, "the picture is too small for the invisible watermarks")
    if frames:
        times = ", ".join(f"{round(t, 3):g}" for t in frames)
        return status(RAN, f"on {len(frames)} frame(s) at {times} s")
    return RAN
