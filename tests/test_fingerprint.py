"""One pHash, one Hamming distance, one chunked file hash for every caller."""

from __future__ import annotations

import hashlib

import imagehash
import numpy as np
import pytest
from PIL import Image

from detectors.fingerprint import (
    DIFFERENT_PICTURE_BITS,
    SAME_PICTURE_BITS,
    ahash_hex,
    dhash_hex,
    hamming,
    phash_hex,
    sha256_file,
    sha256_files,
)
from tests.conftest import FIXTURES


def _photos():
    real = sorted((FIXTURES / "real").glob("*.jpg"))[:4]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:400]
    smooth = np.stack([(xx * 0.6) % 255, (yy * 0.8) % 255, (xx + yy) % 255], -1)
    return [Image.open(p).convert("RGB") for p in real] + [
        Image.fromarray(smooth.astype(np.uint8)),
        Image.fromarray(rng.integers(0, 255, (256, 320, 3), dtype=np.uint8)),
    ]


def test_phash_is_imagehash_phash():
    """The numpy pHash (no scipy import at verify time) is imagehash's algorithm."""
    photos = _photos()
    assert len(photos) >= 2
    for im in photos:
        ours, ref = phash_hex(im), str(imagehash.phash(im))
        assert len(ours) == 16
        assert hamming(ours, ref) <= 2, (ours, ref)  # rounding at the median only
        assert phash_hex(np.asarray(im)) == ours  # arrays and images alike


def test_dhash_and_ahash_are_imagehash_s():
    """compare's other two hashes, without imagehash (and the scipy it needs) installed."""
    for im in _photos():
        assert dhash_hex(im) == str(imagehash.dhash(im))
        assert ahash_hex(im) == str(imagehash.average_hash(im))


def test_the_same_picture_distance_holds_on_real_photos():
    """Copies re-encoded, resized or brightened stay within SAME_PICTURE_BITS of the photo;
    two different photos are DIFFERENT_PICTURE_BITS apart or more."""
    import io
    import itertools

    from PIL import ImageEnhance

    def jpeg(im, q):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")

    edits = [
        lambda im: jpeg(im, 50),
        lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
        lambda im: im.resize((im.width * 3 // 2, im.height * 3 // 2), Image.Resampling.BICUBIC),
        lambda im: ImageEnhance.Brightness(im).enhance(1.2),
        lambda im: ImageEnhance.Brightness(im).enhance(0.8),
        lambda im: ImageEnhance.Contrast(im).enhance(1.2),
    ]
    photos = [Image.open(p).convert("RGB") for p in sorted((FIXTURES / "real").glob("*.jpg"))]
    if len(photos) < 3:
        pytest.skip("the shared fixtures' photos are not here")
    hashes = [phash_hex(im) for im in photos]
    for im, h in zip(photos, hashes, strict=True):
        assert max(hamming(h, phash_hex(edit(im))) for edit in edits) <= SAME_PICTURE_BITS
    apart = min(hamming(a, b) for a, b in itertools.combinations(hashes, 2))
    assert apart >= DIFFERENT_PICTURE_BITS


def test_hamming():
    assert hamming("0" * 16, "f" * 16) == 64
    assert hamming("00ff", "00fe") == 1
    assert hamming(None, "00") == hamming("zz", "00") == 64  # unreadable: as far as can be


def test_sha256_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * (3 << 20))
    b.write_bytes(b"tail")
    assert sha256_file(a) == hashlib.sha256(a.read_bytes()).hexdigest()
    assert sha256_files([a, b]) == hashlib.sha256(a.read_bytes() + b"tail").hexdigest()
    with pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "missing")
