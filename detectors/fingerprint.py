"""Perceptual fingerprints: 64-bit pHash, robust to re-encoding and resizing, not to crops.

Measured in DESIGN.md: re-encoded/resized/brightened copies stay within 6 bits, different
images start around 18. A pHash match only nominates a candidate; the watermark or a stored
manifest confirms it.
"""

from __future__ import annotations

import hashlib

from PIL import Image

CANDIDATE_BITS = 10  # at most this many differing bits nominates a ledger candidate


def phash_hex(image: Image.Image) -> str:
    import imagehash

    return str(imagehash.phash(image.convert("RGB")))


def hamming(a_hex: str, b_hex: str) -> int:
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
