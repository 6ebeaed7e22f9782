"""The C2PA manifest store (a JUMBF superbox) out of a signed PNG, JPEG or WebP file.

c2pa-python reads a store but does not hand its bytes back, so the registry takes them from the
container itself: PNG `caBX` chunk; JPEG APP11 segments of the JPEG-XT box format (`JP`, box
instance, sequence number; continuation segments repeat the box header, which is dropped);
WebP RIFF `C2PA` chunk. The bytes returned are what a `.c2pa` sidecar holds
(`application/c2pa`): any C2PA reader accepts them. Returns None when there is none.
"""

from __future__ import annotations

import struct

MAX_STORE = 16 * 1024 * 1024


def extract_store(data: bytes, mime: str) -> bytes | None:
    try:
        if mime == "image/png":
            return _png(data)
        if mime == "image/jpeg":
            return _jpeg(data)
        if mime == "image/webp":
            return _webp(data)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _png(data: bytes) -> bytes | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos = 8
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"caBX":
            body = data[pos + 8 : pos + 8 + n]
            return body if len(body) == n and n <= MAX_STORE else None
        if kind == b"IEND":
            break
        pos += 12 + n
    return None


def _jpeg(data: bytes) -> bytes | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    groups: dict[int, list[tuple[int, bytes]]] = {}
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more metadata
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        seg = data[pos + 4 : pos + 2 + length]
        if marker == 0xEB and len(seg) >= 16 and seg[:2] == b"JP":
            (instance,) = struct.unpack(">H", seg[2:4])
            (seq,) = struct.unpack(">I", seg[4:8])
            groups.setdefault(instance, []).append((seq, seg[8:]))
        pos += 2 + length
    for parts in groups.values():
        parts.sort()
        first = parts[0][1]
        if first[4:8] != b"jumb":
            continue
        (lbox,) = struct.unpack(">I", first[:4])
        head = 16 if lbox == 1 else 8
        body = bytearray(first)
        for _seq, part in parts[1:]:
            body += part[head:]
        if b"c2pa" not in bytes(body[:64]):
            continue
        total = lbox if lbox > 1 else struct.unpack(">Q", first[8:16])[0]
        if total > MAX_STORE or total > len(body):
            return None
        return bytes(body[:total])
    return None


def _webp(data: bytes) -> bytes | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (n,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if kind == b"C2PA":
            body = data[pos + 8 : pos + 8 + n]
            return body if len(body) == n and n <= MAX_STORE else None
        pos += 8 + n + (n & 1)
    return None
