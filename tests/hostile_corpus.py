"""A hostile corpus, generated (nothing large is committed): every file with the exit code
`fakestudio verify` must give it.

    python tests/hostile_corpus.py OUT/        # writes the files and OUT/expected.json

Kinds: decompression bombs, truncations, wrong CRCs, odd colour modes, special files,
corrupted C2PA stores (junk, zeroed, cut, length fields at 2^31, renamed), oversized and
pathological metadata (XMP that made a regex backtrack, a quadratic A1111 line, deep JSON,
entity expansion), odd names (not UTF-8, newline, leading dash, HTML, 255 bytes), formats that
must never be opened (EPS). ``test_hostile_corpus.py`` runs `verify` on each and `audit` on the
whole folder. Exit codes: 0 labelled AI, 1 no provenance, 2 usage error (not a file), 3 tampered
or damaged credentials, 4 unreadable.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

METADATA_MB = int(os.environ.get("FAKESTUDIO_CORPUS_METADATA_MB", "8"))  # the issue used 50


@dataclass
class Case:
    name: str  # file name (str; may hold surrogates for non-UTF-8 bytes)
    expect: int  # verify's exit code
    why: str


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _png_chunks(data: bytes):
    pos = 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        yield ctype, pos, length
        pos += 12 + length


def _photo(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(1, w), y * 255 // max(1, h), (x + y) % 256], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8))


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def build(
    root: Path, labelled: dict[str, Path] | None = None, media: dict[str, bytes] | None = None
) -> list[Case]:
    """Write the corpus into ``root``; ``labelled``: signed outputs by format (png, jpeg,
    webp) to corrupt, e.g. from ``tests.test_verify.write_labelled``; ``media``: signed files
    of the other containers (``tests.media_builders`` names: mp4, heic, wav ...) to corrupt."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def put(name: str, data: bytes, expect: int, why: str) -> None:
        with open(os.path.join(os.fsencode(root), os.fsencode(name)), "wb") as fh:
            fh.write(data)
        cases.append(Case(name, expect, why))

    plain = _photo(300, 300, 1)
    png = _save(plain, "PNG")
    jpg = _save(plain, "JPEG", quality=90)

    # --- bombs, truncation, emptiness ---------------------------------------------------------
    ihdr = png[:8] + _chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
    put(
        "bomb-header.png",
        ihdr + _chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + _chunk(b"IEND", b""),
        4,
        "3.6 GP claimed",
    )
    put(
        "bomb-zlib.png",
        png[:33] + _chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"a" * (64 << 20))) + png[33:],
        1,
        "64 MB of text behind 64 KB",
    )
    put(
        "bomb-gif-frames.gif",
        b"GIF89a"
        + struct.pack("<HH", 65535, 65535)
        + b"\x00\x00\x00"
        + b"\x21\xf9\x04\x00\x00\x00\x00\x00" * 2000
        + b";",
        4,
        "65535 x 65535 GIF",
    )
    put("zero.jpg", b"", 4, "empty")
    put("truncated.png", png[: len(png) // 3], 4, "cut at a third")
    put("truncated.jpg", jpg[: len(jpg) // 3], 4, "cut at a third")
    put("header-only.jpg", jpg[:2], 4, "SOI only")
    put("text.png", b"hello, I am text\n" * 10, 4, "not an image")
    put("random.webp", np.random.default_rng(5).bytes(5000), 4, "random bytes")

    # --- wrong CRCs, odd chunks ---------------------------------------------------------------
    bad = bytearray(png)
    for ctype, pos, length in _png_chunks(png):
        if ctype == b"IDAT":
            bad[pos + 8 + length] ^= 0xFF  # the CRC, not the data
            break
    put("bad-crc-idat.png", bytes(bad), 1, "IDAT CRC wrong (noted in the evidence)")
    put("zero-width.png", png[:16] + struct.pack(">I", 0) + png[20:], 4, "IHDR width 0")
    many = b"".join(_chunk(b"tEXt", b"k\0v") for _ in range(50_000))
    put("many-chunks.png", png[:33] + many + png[33:], 1, "50,000 text chunks")

    # --- odd modes (readable) ------------------------------------------------------------------
    put(
        "mode-I16.png",
        _save(
            Image.fromarray((np.arange(300 * 300).reshape(300, 300) % 65535).astype(np.uint16)),
            "PNG",
        ),
        1,
        "16-bit grey",
    )
    put("mode-cmyk.jpg", _save(plain.convert("CMYK"), "JPEG"), 1, "CMYK JPEG")
    put("mode-LA.png", _save(plain.convert("LA"), "PNG"), 1, "grey + alpha")
    put("mode-P-trns.png", _save(plain.convert("P"), "PNG", transparency=0), 1, "palette + tRNS")
    put(
        "mode-F.tif",
        _save(Image.fromarray(np.full((300, 300), np.nan, np.float32)), "TIFF"),
        1,
        "float TIFF full of NaN",
    )
    put("icon.ico", _save(plain, "ICO"), 1, "ICO")
    put("photo.jp2", _save(plain, "JPEG2000"), 1, "JPEG 2000")

    # --- pathological metadata ------------------------------------------------------------------
    put(
        "xmp-40k.jpg",
        _save(
            plain,
            "JPEG",
            xmp=b"<x:xmpmeta><rdf:Description Iptc4xmpExt:DigitalSourceType='" + b"a" * 40_000,
        ),
        1,
        "XMP that backtracked",
    )
    big_xmp = (
        b"<x:xmpmeta>" + b"DigitalSourceType=" * (METADATA_MB * 1024 * 1024 // 18) + b"</x:xmpmeta>"
    )
    put(f"xmp-{METADATA_MB}mb.webp", _save(plain, "WEBP", xmp=big_xmp), 1, f"{METADATA_MB} MB XMP")
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        + "".join(
            f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
            for p, c in zip("abcdefg", "bcdefgh", strict=True)
        )
        + ']><x:xmpmeta Iptc4xmpExt:DigitalSourceType="&h;"/>'
    )
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", laughs)
    put("xmp-billion-laughs.png", _save(plain, "PNG", pnginfo=info), 1, "entity expansion refused")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "p\nSteps: 1, Sampler: x, " + "a b" * 300_000)
    put("a1111-quadratic.png", _save(plain, "PNG", pnginfo=info), 0, "A1111 claim, linear parse")
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", "[" * 100_000 + "]" * 100_000)
    put("comfy-deep-json.png", _save(plain, "PNG", pnginfo=info), 0, "ComfyUI chunk, JSON too deep")
    info = PngImagePlugin.PngInfo()
    info.add(b"iTXt", b"parameters\0\0\0\0\0caf\xe9 \xff\nSteps: 2, Sampler: Euler, Seed: 1")
    put(
        "a1111-bad-utf8.png", _save(plain, "PNG", pnginfo=info), 0, "A1111 claim, shown with U+FFFD"
    )
    # IFD0 whose EXIF-IFD pointer (and next-IFD link) points back at IFD0: a loop
    tiff = b"MM\0*\0\0\0\x08" + struct.pack(">HHHII", 1, 0x8769, 4, 1, 8) + struct.pack(">I", 8)
    app1 = b"Exif\0\0" + tiff
    put(
        "exif-loop.jpg",
        jpg[:2] + b"\xff\xe1" + struct.pack(">H", 2 + len(app1)) + app1 + jpg[2:],
        1,
        "EXIF IFD loop",
    )
    put(
        "exif-junk.jpg",
        jpg[:2] + b"\xff\xe1\x00\x40Exif\0\0" + np.random.default_rng(3).bytes(58) + jpg[2:],
        1,
        "junk EXIF",
    )
    put(
        "eps.png",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 300 300\nshowpage\n",
        4,
        "EPS: never opened",
    )

    # --- odd names ------------------------------------------------------------------------------
    small = _save(_photo(64, 64, 9), "PNG")
    put(os.fsdecode(b"latin1-caf\xe9.png"), small, 1, "name not UTF-8")
    put("new\nline.png", small, 1, "newline in the name")
    put("-n 5.png", small, 1, "leading dash")
    put("<script>alert(1)<\\script>.png", small, 1, "HTML in the name")
    put("x" * 251 + ".png", small, 1, "255-byte name")

    # --- corrupted C2PA stores -----------------------------------------------------------------
    for fmt, path in sorted((labelled or {}).items()):
        data = Path(path).read_bytes()
        ext = {"jpeg": "jpg"}.get(fmt, fmt)
        put(f"signed.{ext}", data, 0, "intact credentials")
        if fmt == "jpeg":
            start = data.index(b"\xff\xeb")
            end = start + 2 + struct.unpack(">H", data[start + 2 : start + 4])[0]
            put(
                "c2pa-junk.jpg",
                data[: start + 4] + np.random.default_rng(7).bytes(end - start - 4) + data[end:],
                3,
                "APP11 replaced by junk",
            )
            put(
                "c2pa-zeroed.jpg",
                data[: start + 4] + bytes(end - start - 4) + data[end:],
                3,
                "APP11 zeroed",
            )
            put(
                "c2pa-cut16.jpg",
                data[:start] + b"\xff\xeb\x00\x12" + data[start + 4 : start + 20] + data[end:],
                3,
                "APP11 cut to 16 bytes",
            )
            lbox = bytearray(data)
            lbox[start + 12 : start + 16] = struct.pack(">I", 2**31)
            put("c2pa-lbox-2p31.jpg", bytes(lbox), 0, "JUMBF LBox 2^31, signed bytes intact: valid")
        if fmt == "png":
            pos, length = next((p, n) for t, p, n in _png_chunks(data) if t == b"caBX")
            put(
                "c2pa-len-2p31.png",
                data[:pos] + struct.pack(">I", 2**31) + data[pos + 4 :],
                3,
                "caBX length 2^31",
            )
            put("c2pa-renamed.png", data[: pos + 4] + b"xaBX" + data[pos + 8 :], 3, "caBX renamed")
            put(
                "c2pa-zeroed.png",
                data[: pos + 8] + bytes(length) + data[pos + 8 + length :],
                3,
                "caBX zeroed",
            )
            edited = bytearray(data)
            for ctype, ipos, _ in _png_chunks(data):
                if ctype == b"IDAT":
                    edited[ipos + 20] ^= 1
                    break
            put("c2pa-pixels-edited.png", bytes(edited), 3, "a byte of pixel data changed")
        if fmt == "webp":
            pos = data.index(b"C2PA")
            put(
                "c2pa-chunk-2p31.webp",
                data[: pos + 4] + struct.pack("<I", 2**31) + data[pos + 8 :],
                3,
                "RIFF C2PA size 2^31",
            )
            put("c2pa-cut.webp", data[: pos + 40], 3, "cut inside the C2PA chunk")
    media_cases(put, media or {})
    return cases


# --- every other container C2PA embeds a store in (issue 27) ---------------------------------


def _jumbf_at(data: bytes) -> tuple[int, int]:
    """(start, end) of the manifest store's JUMBF superbox (its description box's header)."""
    from detectors.containers import JUMD_C2PA

    j = data.index(JUMD_C2PA)
    start = j - 12
    return start, start + struct.unpack(">I", data[start : start + 4])[0]


def _junk(data: bytes, start: int, end: int, seed: int = 11) -> bytes:
    return data[:start] + np.random.default_rng(seed).bytes(end - start) + data[end:]


def media_cases(put, signed: dict[str, bytes]) -> None:
    """Truncated boxes and wrong lengths in each container (BMFF, RIFF, ID3, TIFF/DNG, SVG,
    PDF, FLAC): no crash, no hang; a damaged store reads "damaged" or "tampered" (exit 3),
    never "no credentials"; a broken file without credentials is "unreadable" (4), a
    well-formed one "no provenance" (1)."""
    try:
        from tests import media_builders as mb

        plain = {n: mb.make(n) for n in ("heic", "mp4", "wav", "mp3", "dng", "svg", "pdf", "avi")}
    except ImportError:  # the [formats]/[video] extras make these; the rest still runs
        return

    # stores made unreadable, in every container
    for name in ("mp4", "heic", "mov", "m4a"):
        if name not in signed:
            continue
        data = signed[name]
        uuid = data.index(bytes.fromhex("d8fec3d61b0e483c92975828877ec481"))
        box = uuid - 8
        size = struct.unpack(">I", data[box : box + 4])[0]
        if name == "mp4":
            put("c2pa-bmff-junk.mp4", _junk(data, uuid + 16, box + size), 3, "C2PA uuid box junk")
        if name == "heic":
            put(
                "c2pa-bmff-2p31.heic",
                data[:box] + struct.pack(">I", 2**31) + data[box + 4 :],
                3,
                "C2PA uuid box size 2^31",
            )
        if name == "mov":
            put("c2pa-bmff-cut.mov", data[: uuid + 200], 3, "cut inside the C2PA uuid box")
        if name == "m4a":
            put(
                "c2pa-bmff-zeroed.m4a",
                data[: uuid + 16] + bytes(size - 24) + data[box + size :],
                3,
                "C2PA uuid box zeroed",
            )
    for name in ("wav", "avi"):
        if name in signed:
            data = signed[name]
            pos = data.index(b"C2PA")
            length = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
            if name == "wav":
                put(
                    "c2pa-riff-junk.wav",
                    _junk(data, pos + 8, pos + 8 + length),
                    3,
                    "RIFF C2PA junk",
                )
            else:
                put(
                    "c2pa-riff-2p31.avi",
                    data[: pos + 4] + struct.pack("<I", 2**31) + data[pos + 8 :],
                    3,
                    "RIFF C2PA chunk size 2^31",
                )
    for name, ext, why in (
        ("mp3", "mp3", "ID3 GEOB store junk"),
        ("flac", "flac", "ID3 GEOB store (before FLAC) junk"),
        ("pdf", "pdf", "PDF manifest stream junk"),
        ("dng", "dng", "TIFF 0xCD41 store junk"),
        ("gif", "gif", "GIF C2PA_GIF store junk"),
    ):
        if name in signed:
            start, end = _jumbf_at(signed[name])
            put(f"c2pa-junk.{ext}", _junk(signed[name], start, end), 3, why)
    if "dng" in signed:
        data = signed["dng"]
        tag = data.index(struct.pack("<HH", 0xCD41, 7))
        put(
            "c2pa-tiff-past-end.dng",
            data[: tag + 8] + struct.pack("<I", len(data) + 4096) + data[tag + 12 :],
            3,
            "TIFF 0xCD41 points past the end",
        )
    if "svg" in signed:
        data = signed["svg"]
        k = data.index(b"<c2pa:manifest>") + len(b"<c2pa:manifest>")
        end = data.index(b"</c2pa:manifest>")
        junk = bytes(np.random.default_rng(4).integers(65, 91, end - k, dtype=np.uint8))
        put("c2pa-svg-junk.svg", data[:k] + junk + data[end:], 3, "SVG manifest base64 junk")

    # containers broken without credentials: unreadable, never a crash or a hang
    heic, mp4, wav = plain["heic"], plain["mp4"], plain["wav"]
    put("bmff-cut.heic", heic[: len(heic) // 2], 4, "HEIC cut in half")
    moov = mp4.index(b"moov") - 4
    put(
        "bmff-moov-2p31.mp4",
        mp4[:moov] + struct.pack(">I", 2**31) + mp4[moov + 4 :],
        1,
        "moov size 2^31: C2PA cannot parse it (said), FFmpeg decodes frames",
    )
    nested = b"".join(struct.pack(">I", 8 * (1000 - i)) + b"moov" for i in range(1000))
    put("bmff-nested-1000.mp4", mp4[:32] + nested, 4, "1000 nested moov boxes")
    put("riff-cut.wav", wav[: len(wav) // 2], 4, "WAV cut in half (data past the end)")
    chunks = b"".join(b"junk" + struct.pack("<I", 2) + b"\0\0" for _ in range(100_000))
    body = wav[12:]
    riff = b"WAVE" + chunks + body
    put("riff-100k-chunks.wav", b"RIFF" + struct.pack("<I", len(riff)) + riff, 1, "100,000 chunks")
    put(
        "id3-size-huge.mp3",
        plain["mp3"][:6] + bytes([0x7F, 0x7F, 0x7F, 0x7F]) + plain["mp3"][10:],
        4,
        "ID3 tag claims 256 MB",
    )
    dng = plain["dng"]
    put(
        "tiff-ifd-past-end.dng",
        dng[:4] + struct.pack("<I", len(dng) + 10) + dng[8:],
        4,
        "first IFD past the end",
    )
    put("dng-cut.dng", dng[: len(dng) // 2], 4, "DNG strip cut in half")
    put("svg-external.svg", mb.make("svg", external="/etc/hostname"), 1, "not rendered, checked")
    put("svg-file-url.svg", mb.make("svg", external="file:///etc/passwd"), 1, "not rendered")
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(
            b"<!ENTITY " + c.encode() + b' "' + (b"&" + p.encode() + b";") * 10 + b'">'
            for p, c in zip("abcdefg", "bcdefgh", strict=True)
        )
        + b']><svg xmlns="http://www.w3.org/2000/svg"><text>&h;</text></svg>'
    )
    put("svg-billion-laughs.svg", laughs, 1, "entities: never expanded nor rendered, checked")
    put("svg-not-xml.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><rect", 4, "not well-formed")
    put("pdf-cut.pdf", plain["pdf"][: len(plain["pdf"]) // 2], 4, "PDF cut in half")
    avi = plain["avi"]
    put(
        "riff-2p31.avi",
        avi[:4] + struct.pack("<I", 2**31) + avi[8:],
        1,
        "RIFF size 2^31: C2PA cannot parse it (said), FFmpeg decodes frames",
    )


def special_files(root: Path) -> list[Case]:
    """Things that are not regular files: `verify` answers with a usage error (exit 2)."""
    root.mkdir(parents=True, exist_ok=True)
    cases = []
    os.symlink(root / "no-such-target.png", root / "dangling.png")
    cases.append(Case("dangling.png", 2, "broken symbolic link"))
    (root / "folder.png").mkdir()
    cases.append(Case("folder.png", 2, "a folder named .png"))
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo.png")
        cases.append(Case("fifo.png", 4, "a FIFO: never opened (would block)"))
    os.symlink("/dev/zero", root / "devzero.png")
    cases.append(Case("devzero.png", 4, "a device: never read"))
    return cases


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    root = Path(argv[0])
    cases = build(root) + special_files(root / "special")
    expected = {os.fsencode(c.name).decode("utf-8", "backslashreplace"): c.expect for c in cases}
    (root / "expected.json").write_text(json.dumps(expected, indent=1))
    print(f"{len(cases)} files in {root} (signed stores: pass labelled files from the tests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
