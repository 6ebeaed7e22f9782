"""Perceptual fingerprints: 64-bit pHash, robust to re-encoding and resizing, not to crops.

A pHash match only nominates a candidate; the watermark or a stored manifest confirms it.
Every pHash, every "same picture" distance and every sha256 of a file in fakestudio comes
from here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
from PIL import Image

HASH_BITS = 64
# How far apart two pHashes are, in differing bits of 64. Measured on 16 photos (the shared
# fixtures' and bench images): copies re-encoded (JPEG 75 and 50, WebP 80), resized (0.5x,
# 0.75x, 1.5x) or made 20% brighter, darker or more contrasted stay within 6 bits of the
# original (brightness +20% is the worst); two different photos are 18 bits apart or more
# (30 typically). `compare` calls a pair within SAME_PICTURE_BITS the same picture and from
# DIFFERENT_PICTURE_BITS on different pictures; in between: edited copies, crops, near twins.
SAME_PICTURE_BITS = 6
DIFFERENT_PICTURE_BITS = 18
# A look-up by pHash (the ledger's) only nominates candidates, and each is confirmed by the
# watermark, the stored manifest or the content before anything is said: it may reach past the
# same picture, to copies edited twice (resized and re-encoded, then brightened).
CANDIDATE_BITS = 10
_DCT8 = None  # the 8 lowest DCT-II rows for 32 samples, built once


def phash_hex(image: Image.Image | np.ndarray) -> str:
    """pHash as 16 hex digits: imagehash.phash's algorithm (grey, 32x32 LANCZOS, 2-D DCT-II,
    the 8x8 lowest frequencies above their median), in numpy so that a verify does not import
    scipy. Over 2048 px the image is box-reduced before LANCZOS (LANCZOS from 4096 px costs
    ~100 ms): within 2 bits of the exact hash on the large fixtures. Every pHash in fakestudio
    (labeller, ledger, verify, compare, prepare) comes from here."""
    global _DCT8
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    im = image.convert("L")
    gap = 3.0 if max(im.size) > 2048 else None
    small = np.asarray(
        im.resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=gap), dtype=np.float64
    )
    if _DCT8 is None:
        n = np.arange(32)
        k = np.arange(8)[:, None]
        _DCT8 = 2.0 * np.cos(np.pi * k * (2 * n + 1) / 64.0)
    low = _DCT8 @ small @ _DCT8.T
    return _hex(low > np.median(low))


def dhash_hex(image: Image.Image) -> str:
    """Difference hash, as `imagehash.dhash` computes it: grey, 9x8 LANCZOS, each pixel
    brighter than its left neighbour (64 bits, 16 hex digits)."""
    px = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS))
    return _hex(px[:, 1:] > px[:, :-1])


def ahash_hex(image: Image.Image) -> str:
    """Average hash, as `imagehash.average_hash` computes it: grey, 8x8 LANCZOS, each pixel
    above the mean."""
    px = np.asarray(image.convert("L").resize((8, 8), Image.Resampling.LANCZOS))
    return _hex(px > px.mean())


def _hex(bits: np.ndarray) -> str:
    return f"{int(''.join('1' if b else '0' for b in bits.flatten()), 2):016x}"


def hamming(a_hex: str, b_hex: str) -> int:
    """Differing bits of two hex hashes; a missing or malformed hash is as far as can be."""
    try:
        return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()
    except (TypeError, ValueError):
        return HASH_BITS


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    return sha256_files([path])


def sha256_files(paths: Iterable) -> str:
    """One sha256 over several files' bytes in the given order, read in 1 MiB chunks."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
