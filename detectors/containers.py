"""A bounded walk over an image file's container: where a C2PA store sits, and what is broken.

    scan = scan_container(data)        # bytes, bytearray, memoryview or mmap
    scan.stores     # [Store(where="JPEG APP11 JUMBF", offset=20, ...)]: C2PA stores found
    scan.problems   # ["PNG chunk IDAT at offset 4989: bad CRC (...)"]
    scan.texts      # PNG iTXt chunks that are not valid UTF-8 (Pillow drops them), decoded
                    # with replacement characters

Why: c2pa-python answers ``ManifestNotFound`` both when a file has no credentials and when a
store IS there but cannot be parsed (its APP11 body replaced by junk, zeroed, cut short). A
broken credential must never read as "no credential", so the verifier looks for the store
itself, in every container c2pa-rs embeds one in:

* JPEG: APP11 segments carrying JUMBF (``JP`` common identifier) whose description box is
  labelled ``c2pa``; an APP11 segment, ``JP`` or not, whose body is not a readable JUMBF
  superbox (zeroed, junk, no description box) counts as a damaged store too: APP11 is where
  JPEG carries JUMBF, and a readable box of another kind (JPEG 360) is left alone;
* PNG: the ``caBX`` chunk; RIFF (WebP, WAV, AVI): the ``C2PA`` chunk;
* TIFF/DNG: tag 0xCD41 in the first IFD; GIF: the ``C2PA_GIF`` application extension;
* ISO BMFF (MP4, MOV, HEIF, AVIF) and JPEG XL: a ``uuid`` box with the C2PA UUID, a top-level
  ``jumb`` or ``c2pa`` box; MP3 and FLAC: an ID3 ``GEOB`` frame of type ``application/c2pa``
  (c2pa-rs 0.91) or ``application/x-c2pa-manifest-store``; SVG/XML: a ``c2pa:manifest``
  element; PDF: an embedded file whose ``AFRelationship`` is ``C2PA_Manifest``;
* anywhere else: the JUMBF description box of a C2PA manifest store (``jumd`` + the C2PA
  UUID) at an offset no container accounts for.

Every loop is bounded by the file's size and ``MAX_UNITS`` chunks/segments/boxes; nothing is
decompressed beyond ``MAX_TEXT_BYTES``; nothing raises (``scan_container`` catches everything
and says so in ``problems``). Imports neither fakestudio nor torch.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from dataclasses import dataclass, field

MAX_UNITS = 100_000  # chunks, segments, boxes or IFD entries looked at
MAX_PROBLEMS = 10
MAX_TEXT_BYTES = 1024 * 1024  # per PNG text chunk, after decompression
MAX_TEXTS = 50

PNG_SIG = b"\x89PNG\r\n\x1a\n"
C2PA_UUID = bytes.fromhex("6332706100110010800000aa00389b71")  # "c2pa" + ISO suffix
JUMD_C2PA = b"jumd" + C2PA_UUID  # the description box of a manifest store
BMFF_C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
TIFF_C2PA_TAG = 0xCD41
JXL_SIG = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


@dataclass
class Store:
    """A C2PA manifest store found in the container (readable or not)."""

    where: str  # "JPEG APP11 JUMBF", "PNG caBX chunk", ...
    offset: int  # of the segment, chunk or box
    size: int  # bytes the container gives it
    declared: int | None = None  # the store's own (JUMBF) length field, when readable
    note: str | None = None  # what looks wrong, if anything

    def describe(self) -> str:
        text = f"{self.where} at byte {self.offset} ({self.size} bytes)"
        return f"{text}: {self.note}" if self.note else text


@dataclass
class Scan:
    kind: str | None = None  # png, jpeg, riff, tiff, gif, bmff, jxl, id3, xml, pdf
    stores: list[Store] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # bad-UTF-8 iTXt: keyword -> text

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS and text not in self.problems:
            self.problems.append(text)


def scan_container(data) -> Scan:
    """Walk ``data`` (the whole file); never raises."""
    scan = Scan()
    try:
        buf = data if isinstance(data, (bytes, mmap.mmap)) else bytes(data)
        _dispatch(buf, scan)
        if not scan.stores:
            _stray_jumbf(buf, scan)
    except Exception as e:  # noqa: BLE001 - a hostile file must never crash the verifier
        scan.problem(f"container could not be walked: {type(e).__name__}: {e}"[:200])
    return scan


def scan_file(path) -> Scan:
    """``scan_container`` over a file too large to hold in memory (memory-mapped, read only)."""
    try:
        with open(path, "rb") as fh:
            if not fh.seek(0, 2):
                return Scan()
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return scan_container(mm)
    except (OSError, ValueError) as e:
        return Scan(problems=[f"container not walked: {e}"[:200]])


# --- dispatch ---------------------------------------------------------------------------------


def _dispatch(buf, scan: Scan) -> None:
    head = bytes(buf[:16])
    if head.startswith(PNG_SIG):
        scan.kind = "png"
        _png(buf, scan)
    elif head.startswith(b"\xff\xd8"):
        scan.kind = "jpeg"
        _jpeg(buf, scan)
    elif head[:4] == b"RIFF":
        scan.kind = "riff"
        _riff(buf, scan)
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        scan.kind = "tiff"
        _tiff(buf, scan)
    elif head[:4] == b"GIF8":
        scan.kind = "gif"
        _find_store(buf, b"\x21\xff\x0bC2PA_GIF", "GIF C2PA_GIF application extension", scan)
    elif head.startswith(JXL_SIG) or head[4:8] == b"ftyp":
        scan.kind = "jxl" if head.startswith(JXL_SIG) else "bmff"
        _boxes(buf, scan)
    elif head[:3] == b"ID3":
        scan.kind = "id3"
        _id3(buf, scan)
    elif head.startswith(b"%PDF-"):
        scan.kind = "pdf"
        _find_store(
            buf, b"/C2PA_Manifest", "PDF embedded file (AFRelationship C2PA_Manifest)", scan
        )
    elif head.lstrip()[:1] == b"<":
        scan.kind = "xml"
        _find_store(buf, b"<c2pa:manifest", "SVG c2pa:manifest element", scan)


def _id3(buf, scan: Scan) -> None:
    """The ID3v2 tag at the start of an MP3 (or of a FLAC file c2pa-rs signed): a GEOB frame
    of a C2PA MIME type, and a tag that claims more bytes than the file has."""
    n = len(buf)
    if n >= 10:
        b = bytes(buf[6:10])
        size = (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)
        if 10 + size > n:
            scan.problem(f"ID3 tag declares {10 + size} bytes, past the end of the file ({n})")
    for needle in (b"GEOB", b"application/c2pa\0", b"application/x-c2pa-manifest-store"):
        pos = buf.find(needle, 0, min(n, 64 * 1024 * 1024))
        if needle == b"GEOB":
            # the frame itself is only a store when its MIME type is C2PA's
            if pos < 0 or buf.find(b"c2pa", pos, pos + 64) < 0:
                continue
        if pos >= 0:
            scan.stores.append(Store("ID3 GEOB frame (C2PA)", pos, n - pos))
            return


def _find_store(buf, needle: bytes, where: str, scan: Scan) -> None:
    pos = buf.find(needle)
    if pos >= 0:
        scan.stores.append(Store(where, pos, len(buf) - pos))


def _stray_jumbf(buf, scan: Scan) -> None:
    """A manifest store's JUMBF description box where no container put one (a renamed chunk,
    a store moved or wrapped): the credentials were damaged or hidden."""
    data = buf
    pos = data.find(JUMD_C2PA)
    if pos >= 0:
        start = max(0, pos - 12)  # the superbox header before the description box
        scan.stores.append(
            Store(
                "C2PA JUMBF box outside any container the reader looks in",
                start,
                len(data) - start,
                note="the manifest store is not where this file format keeps it",
            )
        )


# --- PNG --------------------------------------------------------------------------------------


def _png(buf, scan: Scan) -> None:
    pos, n, units = 8, len(buf), 0
    while pos + 8 <= n and units < MAX_UNITS:
        units += 1
        length, ctype = struct.unpack(">I4s", buf[pos : pos + 8])
        name = ctype.decode("latin-1")
        end = pos + 12 + length
        if end > n:
            scan.problem(
                f"PNG chunk {name!r} at byte {pos} declares {length} bytes, "
                f"past the end of the file ({n - pos - 12} left)"
            )
            if ctype == b"caBX":
                scan.stores.append(
                    Store(
                        "PNG caBX chunk",
                        pos,
                        max(0, n - pos - 8),
                        note=f"its length field says {length} bytes, past the end of the file",
                    )
                )
            return
        body = buf[pos + 8 : pos + 8 + length]
        stored = struct.unpack(">I", buf[end - 4 : end])[0]
        computed = zlib.crc32(body, zlib.crc32(ctype)) & 0xFFFFFFFF
        if stored != computed:
            scan.problem(
                f"PNG chunk {name!r} at byte {pos}: bad CRC (stored {stored:08x}, "
                f"computed {computed:08x}): the file was damaged or edited by hand"
            )
        if ctype == b"caBX":
            store = Store("PNG caBX chunk", pos, length)
            _jumbf_header(body, store)
            scan.stores.append(store)
        elif ctype == b"iTXt" and len(scan.texts) < MAX_TEXTS and length <= MAX_TEXT_BYTES:
            key, text = _bad_utf8_itxt(bytes(body))
            if key and key not in scan.texts:
                scan.texts[key] = text
        pos = end
        if ctype == b"IEND":
            return


def _bad_utf8_itxt(body: bytes) -> tuple[str | None, str]:
    """(keyword, text decoded with replacement) of an iTXt chunk whose text is not valid UTF-8
    (Pillow drops those silently); (None, "") for a valid, oversized or broken one."""
    key, sep, rest = body.partition(b"\0")
    if not sep or not key or len(rest) < 2:
        return None, ""
    flag, method, rest = rest[:1], rest[1:2], rest[2:]
    _lang, _, rest = rest.partition(b"\0")
    _tkey, _, text = rest.partition(b"\0")
    try:
        if flag == b"\x01":
            if method != b"\x00":
                return None, ""
            d = zlib.decompressobj()
            text = d.decompress(text, MAX_TEXT_BYTES)
            if d.unconsumed_tail:
                return None, ""  # over the limit: Pillow skips it too, and says so
        text.decode("utf-8")
        return None, ""  # valid: Pillow has it
    except UnicodeDecodeError:
        return key[:79].decode("latin-1"), text.decode("utf-8", "replace")
    except zlib.error:
        return None, ""


# --- JPEG -------------------------------------------------------------------------------------


def _jpeg(buf, scan: Scan) -> None:
    pos, n, units = 2, len(buf), 0
    boxes: dict[int, list] = {}  # JUMBF box instance (En) -> [first segment offset, payload]
    while pos + 4 <= n and units < MAX_UNITS:
        units += 1
        if buf[pos] != 0xFF:
            scan.problem(f"JPEG: no marker at byte {pos} (garbage between segments)")
            break
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more metadata segments
            break
        length = struct.unpack(">H", buf[pos + 2 : pos + 4])[0]
        end = pos + 2 + length
        if length < 2 or end > n:
            scan.problem(f"JPEG segment 0x{marker:02X} at byte {pos} runs past the end of the file")
            end = n
        if marker == 0xEB:
            _app11(buf, pos, bytes(buf[pos + 4 : end]), boxes, scan)
        pos = end
    for offset, payload in boxes.values():
        what = _jumbf_kind(payload)
        if what in ("c2pa", "cut"):
            store = Store("JPEG APP11 JUMBF", offset, len(payload))
            _jumbf_header(payload, store)
            scan.stores.append(store)
        elif what == "unreadable":
            scan.stores.append(
                Store(
                    "JPEG APP11 JUMBF",
                    offset,
                    len(payload),
                    note="its body is not a readable JUMBF box "
                    f"({_looks(bytes(payload[:64]))}): a damaged or overwritten store",
                )
            )


def _app11(buf, pos: int, payload: bytes, boxes: dict, scan: Scan) -> None:
    if payload[:2] == b"JP" and len(payload) >= 8:
        instance = struct.unpack(">H", payload[2:4])[0]
        seq = struct.unpack(">I", payload[4:8])[0]
        body = payload[8:]
        if instance not in boxes:
            boxes[instance] = [pos, body]
        elif seq > 1 and len(body) >= 8:  # a continuation repeats the box header (LBox, TBox)
            boxes[instance][1] += body[8:]
        return
    if payload.startswith(b"HDR_RI"):  # Dolby's JPEG-HDR, not JUMBF
        return
    scan.stores.append(
        Store(
            "JPEG APP11 segment",
            pos,
            len(payload),
            note="the segment where JPEG carries C2PA's JUMBF holds no readable JUMBF box "
            f"({_looks(payload)})",
        )
    )


def _is_c2pa_jumbf(payload: bytes) -> bool:
    """A JUMBF superbox whose description box is C2PA's, or one cut before its description box
    (cut short: what it was can no longer be told, and c2pa-rs would have read it)."""
    return _jumbf_kind(payload) in ("c2pa", "cut")


def _jumbf_kind(payload) -> str:
    """What a JUMBF payload is: "c2pa" (a superbox described as a C2PA manifest store), "cut"
    (a superbox header cut before its description box), "other" (a well-formed superbox of
    another kind: JPEG 360, a JPEG XT box; not credentials) or "unreadable" (no superbox:
    random bytes, zeros, a wrong box type; APP11 "JP" carries nothing else, so this is a
    store that was damaged or overwritten)."""
    payload = bytes(payload[:64])
    if len(payload) < 8 or payload[4:8] != b"jumb":
        return "unreadable"
    lbox = int.from_bytes(payload[:4], "big")
    if lbox not in (0, 1) and lbox < 8 + 8 + 17:  # room for a description box: 8 + 16 + 1
        return "unreadable"
    desc = payload[8:]
    if len(desc) < 8 + 16:
        return "cut"
    dlen = int.from_bytes(desc[:4], "big")
    if desc[4:8] != b"jumd" or dlen < 8 + 16 + 1:
        return "unreadable"
    return "c2pa" if desc[8:24] == C2PA_UUID else "other"


def _jumbf_header(body, store: Store) -> None:
    if len(body) < 8:
        store.note = f"only {len(body)} bytes: not a JUMBF box"
        return
    lbox, tbox = struct.unpack(">I4s", bytes(body[:8]))
    if tbox != b"jumb":
        store.note = f"it does not start with a JUMBF superbox ({_looks(bytes(body[:64]))})"
        return
    store.declared = lbox
    if lbox == 1 and len(body) >= 16:
        store.declared = struct.unpack(">Q", bytes(body[8:16]))[0]
    if store.declared not in (0, len(body)):
        store.note = f"its JUMBF box declares {store.declared} bytes but {len(body)} are there" + (
            " (cut short)" if store.declared > len(body) else ""
        )


def _looks(data: bytes) -> str:
    if not data:
        return "empty"
    if data.count(0) == len(data):
        return f"{len(data)} zero bytes"
    return f"{len(data)} bytes starting {data[:8].hex()}"


# --- RIFF (WebP, WAV, AVI) --------------------------------------------------------------------


def _riff(buf, scan: Scan) -> None:
    n = len(buf)
    declared = struct.unpack("<I", buf[4:8])[0] if n >= 8 else 0
    if declared + 8 > n:
        scan.problem(f"RIFF header declares {declared + 8} bytes, the file has {n}")
    pos, units = 12, 0
    while pos + 8 <= n and units < MAX_UNITS:
        units += 1
        ctype, length = struct.unpack("<4sI", buf[pos : pos + 8])
        end = pos + 8 + length
        if ctype == b"C2PA":
            store = Store("RIFF C2PA chunk", pos, min(length, n - pos - 8))
            if end > n:
                store.note = f"its size field says {length} bytes, past the end of the file"
            else:
                _jumbf_header(buf[pos + 8 : end], store)
            scan.stores.append(store)
        if end > n:
            scan.problem(
                f"RIFF chunk {ctype.decode('latin-1')!r} at byte {pos} declares {length} bytes, "
                "past the end of the file"
            )
            return
        pos = end + (length & 1)


# --- TIFF -------------------------------------------------------------------------------------


def _tiff(buf, scan: Scan) -> None:
    n = len(buf)
    end = "<" if bytes(buf[:2]) == b"II" else ">"
    if n < 8:
        return
    ifd = struct.unpack(end + "I", buf[4:8])[0]
    if ifd + 2 > n:
        scan.problem(f"TIFF: first IFD at byte {ifd}, past the end of the file")
        return
    count = struct.unpack(end + "H", buf[ifd : ifd + 2])[0]
    for i in range(min(count, MAX_UNITS)):
        e = ifd + 2 + 12 * i
        if e + 12 > n:
            scan.problem("TIFF: the first IFD runs past the end of the file")
            return
        tag, _typ, cnt, off = struct.unpack(end + "HHII", buf[e : e + 12])
        if tag == TIFF_C2PA_TAG:
            store = Store("TIFF tag 0xCD41", off, cnt)
            if off + cnt > n:
                store.note = f"it points at {cnt} bytes at byte {off}, past the end of the file"
            else:
                _jumbf_header(buf[off : off + cnt], store)
            scan.stores.append(store)


# --- ISO BMFF (MP4, HEIF, AVIF) and JPEG XL ---------------------------------------------------


def _boxes(buf, scan: Scan) -> None:
    pos, n, units = 0, len(buf), 0
    while pos + 8 <= n and units < MAX_UNITS:
        units += 1
        size, btype = struct.unpack(">I4s", buf[pos : pos + 8])
        header = 8
        if size == 1 and pos + 16 <= n:
            size, header = struct.unpack(">Q", buf[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = n - pos
        if size < header:
            scan.problem(f"box {btype!r} at byte {pos} declares {size} bytes (invalid)")
            return
        end = pos + size
        body = buf[pos + header : min(end, n)]
        if btype == b"uuid" and bytes(body[:16]) == BMFF_C2PA_UUID:
            scan.stores.append(Store("BMFF uuid box (C2PA)", pos, len(body)))
        elif btype == b"c2pa" or (btype == b"jumb" and _is_c2pa_jumbf(bytes(buf[pos:end]))):
            store = Store(f"{btype.decode()} box", pos, len(body))
            scan.stores.append(store)
        if end > n:
            scan.problem(f"box {btype!r} at byte {pos} declares {size} bytes, past the end")
            return
        pos = end
