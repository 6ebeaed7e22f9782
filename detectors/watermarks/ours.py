"""fakestudio's first invisible watermark: read in every label, embedded in those written
before issue 24.

Since issue 24 the labeller embeds only the durable mark (``durable``): on top of it this mark
took the whole label from 40.5 to 37.8 dB RGB PSNR on the bench pictures (34.4 dB worst, where
``embed_for_upload`` chose the strong mark) and showed as 8 px colour blocks on smooth skies and
dark water; weakened to fit the budget (~50 dB) it no longer survived an upload (0.5x + JPEG
85 ledger match 25 -> 0 of 28 bench pictures). ``decode``, ``match`` and ``embed`` stay: old
labels read as before, and ``match_copy`` (the ledger's and the registry's question) tests
this mark and then the durable one. Measured figures below are for this mark alone.

Message: 64 bits = a 40-bit identifier (10 hex digits, the first 5 bytes of the output's
fingerprint) followed by a 24-bit keyed check, the first 3 bytes of
``sha256(b"fakestudio-wm-v1" + identifier)``, most significant bit first. It is embedded with
imwatermark's ``dwtDctSvd`` layout (U channel, haar LL band, 4x4 blocks, step 36, block ``k``
carries bit ``k % 64``), so ``imwatermark.WatermarkDecoder("bytes", 64).decode(bgr,
"dwtDctSvd")`` returns the 8 message bytes too.

Decision (``decode``): ``found`` only when, on one of the two grids tried,

1. the 24 check bits equal the keyed hash of the 40 identifier bits, and
2. the mean soft margin ``mean |2 * score - 1|`` over the 64 bits is at least
   ``MARGIN_MIN = 0.2``.

Two strengths: the normal quantisation step (``SCALE`` = 36, imwatermark's, so imwatermark
reads these marks too) and twice it (``STRONG_SCALE``). ``embed_for_upload`` (the labeller's
choice until issue 24) uses the strong one only where the normal mark would not survive a
typical upload (``simulated_upload``: 0.5x, JPEG 85, 4:2:0 chroma) and the strong one does:
pictures with fine colour texture (the tiny base's, foliage, crowds). Strong costs ~6 dB of
PSNR (35.5 vs 42 dB on the fixture photos, in the U channel only). On a tiny-base picture,
after the normal mark 2 of 9 uploads (0.5/0.6/0.75x at JPEG 75/85/92) still matched the known
payload, after the strong one 7 of 9.

False positives. The check is a keyed hash, not a linear code (a CRC would accept the all-zero
message a flat image decodes to), so any decoded 64-bit pattern that was not produced by
``embed`` passes with probability 2^-24 (6e-8), structured or not; two grids (full size, then
the half-size grid) and two strengths are tried, so the bound is 4 * 2^-24 = 2.4e-7 per image.
The margin condition comes on top: random-noise images decode with a mean margin of ~0.07 at 512 px
(~0.14 at 256 px: 16 blocks per bit), far below 0.2, so for noise-like images the combined
rate is far smaller; it does not help on flat or very smooth images (every block agrees, margin
up to 1.0), which is why the check bits are the main guard. Measured: no detection on random
noise, flat colours, gradients, stripes, or the camera photos and generated images in
``shared/fixtures`` (full size, 512 px crops, 0.5/0.75 resizes).

Robustness, measured on 10 fixture images (6 camera photos, 4 generated) centre-cropped and
resized to 512x512, a random payload each (soft decoding; found / bit accuracy mean, worst /
mean margin worst):

* PNG round trip, one-pixel edit: 10/10, 1.000, 1.000, margin >= 0.97
* JPEG quality 90: 10/10, 1.000, 1.000, margin >= 0.62
* JPEG quality 75: 10/10, 1.000, 1.000, margin >= 0.44
* resize 0.5 (bilinear, bicubic, Lanczos; found on the half-size grid): 10/10, 1.000, 1.000,
  margin >= 0.84
* brightness +10: 10/10
* partly: JPEG 60 9/10 (0.995, 0.953), JPEG 50 6/10 (0.991, 0.969): one wrong bit fails the
  check (no error correction, on purpose: each corrected pattern tried would multiply the
  false-positive rate); resize 0.5 then JPEG 90 6/10.
* not at all: resize 0.75 (0.51: the block grid no longer lines up), crops that shift the
  8-pixel grid, rotations.
* same sources at 768 and 1024 px, JPEG 75 and resize 0.5: 59/60 found (the miss: a flat UI
  screenshot after JPEG 75, whose chroma subsampling flattens the mark in flat areas; 0.906).

Embedding changes only the U (blue-difference) channel: Y and V are preserved up to the final
rounding (except where B saturates, see ``dwt``); PSNR 41.2-44.5 dB, mean 41.9, on those
images. It follows imwatermark's layout, so at widths that are multiples of 512 each bit sits
in one column of 8-pixel blocks: in flat bright areas the (x10 amplified) difference shows
faint vertical banding; unamplified it is not visible. Embed is deterministic.

Known-payload matching (``match``): when the payload to expect is known (a ledger entry found
by perceptual hash), counting the bits that agree with it is far stronger than blind decoding,
which needs all 64 bits right. Under "this image does not carry that payload" the agreeing
bits are Binomial(64, 1/2) (the expected bits come from a hash, independent of the image), so
the tail probability is an exact p-value; ``match`` accepts at p <= ``MATCH_P_MAX`` (1e-6, after
multiplying by the grids, strengths and copies tried): at least 52 agreeing bits of 64 for one
copy, 54 in verify's ledger search (up to 3 candidates x 2 copies). On 14 fixture images at
512 px, labelled as the labeller does (``embed_for_upload``: 13 normal, 1 strong), downscaled
by 0.5 and saved as JPEG 85 with 4:2:0 chroma: blind decoding found 3/14, ``match`` 14/14
(55-64 bits); normal marks only: 2/14 and 13/14. At JPEG 75: 0/14 blind, 7/14 ``match``.
Unmarked images against random payloads: at most 48 bits agree (tests). ``match_copy`` tests
this mark and then the durable one (``durable.match``), so it doubles ``tries`` here: verify's
ledger search still needs 54 bits, and the two tests together stay under ``MATCH_P_MAX`` plus
the durable match's own bound.

Speed (512x512, numpy, this 2-core box): embed ~9 ms (imwatermark's dwtDctSvd: ~150-220 ms
here); decode ~3 ms when the mark is found on the full grid, ~8 ms for an unmarked image (the
half-size grid has 4x the blocks).
"""

from __future__ import annotations

import hashlib
import io
import math
import re

import numpy as np

from .dwt import (
    DEFAULT_SCALE,
    as_rgb,
    bits_from_scores,
    check_size,
    embed_dwt_dct_svd,
    ll_band,
    mean_per_bit,
    to_blocks,
    top_singular,
    votes,
)
from .result import WatermarkResult

__all__ = [
    "CHECK_BITS",
    "ID_BITS",
    "MARGIN_MIN",
    "NBITS",
    "SCHEME",
    "decode",
    "embed",
    "embed_for_upload",
    "match",
    "match_copy",
    "match_first_copy",
    "message_bits",
    "payload_from_fingerprint",
]

SCHEME = "fakestudio"
ALG = "org.fakestudio.wm.dwtdctsvd.v1"  # the C2PA soft-binding algorithm name
ID_BITS = 40
CHECK_BITS = 24
NBITS = ID_BITS + CHECK_BITS
SCALE = DEFAULT_SCALE  # the normal strength: imwatermark's step, readable by imwatermark too
STRONG_SCALE = 2 * DEFAULT_SCALE  # for pictures whose texture drowns the normal mark on upload
SCALES = (SCALE, STRONG_SCALE)
UPLOAD_SCALE, UPLOAD_QUALITY = 0.5, 85  # the upload the labeller checks a mark against
LEDGER_TRIES = 6  # verify's ledger search: up to 3 candidates x 2 copies each
#: Minimum mean soft margin for ``found`` (noise gives ~0.07 at 512 px; JPEG 75 keeps >= 0.44).
MARGIN_MIN = 0.2
#: The half-size grid is only searched up to this many pixels (its cost grows 4x).
HALF_GRID_MAX_PIXELS = 2048 * 2048
MATCH_P_MAX = 1e-6  # known-payload match: largest accepted p-value (grids tried included)

_KEY = b"fakestudio-wm-v1"
_HEX_ID = re.compile(r"^[0-9a-fA-F]{10}$")


def _check(ident: bytes) -> bytes:
    return hashlib.sha256(_KEY + ident).digest()[: CHECK_BITS // 8]


def payload_from_fingerprint(fp: bytes) -> str:
    """The 40-bit identifier for an output: its fingerprint's first 5 bytes as 10 hex digits."""
    if len(fp) < ID_BITS // 8:
        raise ValueError(f"fingerprint must have at least {ID_BITS // 8} bytes")
    return bytes(fp[: ID_BITS // 8]).hex()


def _ident(payload_hex: str) -> bytes:
    if not isinstance(payload_hex, str) or not _HEX_ID.match(payload_hex):
        raise ValueError(f"payload must be 10 hex digits (40 bits), got {payload_hex!r}")
    return bytes.fromhex(payload_hex)


def message_bits(payload_hex: str) -> np.ndarray:
    """The 64 embedded bits (identifier then check, MSB first) for a 10-hex-digit payload."""
    ident = _ident(payload_hex)
    return np.unpackbits(np.frombuffer(ident + _check(ident), dtype=np.uint8))


def embed(rgb: np.ndarray, payload_hex: str, strong: bool = False) -> np.ndarray:
    """Return a copy of ``rgb`` (uint8, H x W x 3, at least 256x256) carrying ``payload_hex``.

    ``strong``: twice the quantisation step (``STRONG_SCALE``). Raises ``ValueError`` for a
    malformed payload or an image that is too small.
    """
    return embed_dwt_dct_svd(rgb, message_bits(payload_hex), STRONG_SCALE if strong else SCALE)


def embed_for_upload(rgb: np.ndarray, payload_hex: str) -> tuple[np.ndarray, str]:
    """Embed at the normal strength, or the strong one when only that survives an upload.

    The check is the upload verify's ledger search must see through (``simulated_upload``:
    0.5x, JPEG 85 with 4:2:0 chroma, then ``match_copy``). Returns (pixels, "normal" | "strong");
    when neither survives, the normal (less visible) mark is kept.
    """
    marked = embed(rgb, payload_hex)
    if _survives_upload(marked, payload_hex):
        return marked, "normal"
    strong = embed(rgb, payload_hex, strong=True)
    if _survives_upload(strong, payload_hex):
        return strong, "strong"
    return marked, "normal"


def simulated_upload(rgb: np.ndarray) -> np.ndarray:
    """What a platform does to a picture: downscale by 0.5, JPEG 85 with 4:2:0 chroma."""
    from PIL import Image

    h, w = rgb.shape[:2]
    small = Image.fromarray(rgb).resize(
        (max(1, round(w * UPLOAD_SCALE)), max(1, round(h * UPLOAD_SCALE))), Image.LANCZOS
    )
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=UPLOAD_QUALITY)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB"))


def _survives_upload(marked: np.ndarray, payload_hex: str) -> bool:
    h, w = marked.shape[:2]
    return match_first_copy(simulated_upload(marked), payload_hex, (w, h), LEDGER_TRIES).found


def _grid_singular_values(a: np.ndarray, up: int) -> np.ndarray:
    blocks, _, _ = to_blocks(ll_band(a, False, 128.0, up))
    return top_singular(blocks, vectors=False)


def scores_at(s0: np.ndarray, scale: float) -> np.ndarray:
    """Per-bit soft scores of our 64 bits from the blocks' top singular values."""
    return mean_per_bit(votes(s0, scale, True), NBITS)


def _strength(scale: float) -> str:
    return "normal" if scale == SCALE else "strong"


def grids_for(shape) -> list[int]:
    return [1, 2] if shape[0] * shape[1] <= HALF_GRID_MAX_PIXELS else [1]


def agreement_p_value(agreeing: int, nbits: int = NBITS) -> float:
    """P(at least `agreeing` of `nbits` fair coin flips match): the chance of this by luck."""
    return sum(math.comb(nbits, k) for k in range(agreeing, nbits + 1)) / 2.0**nbits


def match(rgb: np.ndarray, payload_hex: str, tries: int = 1) -> WatermarkResult:
    """Does ``rgb`` carry the known ``payload_hex``? Counts agreeing bits instead of decoding.

    ``tries``: how many (image, payload) pairs the caller tests in all (candidates x resized
    copies); the p-value is multiplied by it and by the grids and strengths tried, so the
    false-positive rate of the whole search stays under ``MATCH_P_MAX``. ``bit_accuracy``:
    agreeing bits / 64 at the best grid and strength; ``confidence``: 1 - p. Never raises on
    bad images (``found=False``).
    """
    expected = message_bits(payload_hex)
    try:
        a = np.asarray(rgb)
        check_size(a.shape)
        a = as_rgb(a)
    except ValueError as e:
        return WatermarkResult(SCHEME, False, details={"error": str(e)})
    grids = grids_for(a.shape)
    factor = len(grids) * len(SCALES) * max(1, tries)  # every reading counts, early exit or not
    best = (-1, 1, SCALE)
    for up in grids:
        s0 = _grid_singular_values(a, up)
        for scale in SCALES:
            agreeing = int((bits_from_scores(scores_at(s0, scale)) == expected).sum())
            best = max(best, (agreeing, -up, scale))
        if agreement_p_value(best[0]) * factor <= MATCH_P_MAX:
            break
    agreeing, up, scale = best
    p = min(1.0, agreement_p_value(agreeing) * factor)
    found = p <= MATCH_P_MAX
    return WatermarkResult(
        SCHEME,
        found,
        payload=payload_hex if found else None,
        confidence=1.0 - p,
        bit_accuracy=agreeing / NBITS,
        details={
            "grid": "full" if up == -1 else "half-size",
            "strength": _strength(scale),
            "agreeing_bits": agreeing,
            "p_value": p,
            "p_max": MATCH_P_MAX,
        },
    )


def match_first_copy(
    rgb: np.ndarray, payload_hex: str, size: tuple[int, int], tries: int = 2
) -> WatermarkResult:
    """The first mark alone: ``match`` on a copy as it is, then resized back to the original's
    ``size`` (w, h): the first that matches, else the better of the two
    (``details["copy"]``). ``tries`` counts both copies."""
    from PIL import Image

    h, w = rgb.shape[:2]
    copies = {"as is": lambda: rgb}
    if (w, h) != tuple(size) and 0 < size[0] * size[1] <= 8192**2:
        copies[f"resized to {size[0]}x{size[1]}"] = lambda: np.asarray(
            Image.fromarray(rgb).resize(tuple(size), Image.BICUBIC)
        )
    best = None
    for name, copy in copies.items():
        r = match(copy(), payload_hex, tries)
        r = WatermarkResult(
            r.scheme,
            r.found,
            r.payload,
            r.confidence,
            r.bit_accuracy,
            r.margin,
            {**r.details, "copy": name, "mark": "first"},
        )
        if r.found:
            return r
        if best is None or (r.bit_accuracy or 0) > (best.bit_accuracy or 0):
            best = r
    return best


def match_copy(
    rgb: np.ndarray, payload_hex: str, size: tuple[int, int], tries: int = 2
) -> WatermarkResult:
    """Does a copy carry the label of this known payload, in either of fakestudio's marks?
    (verify's ledger search and the registry ask this of a candidate found by perceptual
    hash.) The first mark's agreeing bits (``match_first_copy``: labels written before issue
    24 carry it), else the durable mark's known-payload match (``durable.match_copy``: every
    label carries it). ``details["mark"]`` says which; ``tries`` counts the copies and
    candidates as in ``match``, and doubles for the first mark (two marks are tested), so
    the whole test keeps its false-positive rate under ``MATCH_P_MAX`` plus the durable
    match's bound (~1e-16, see there)."""
    first = match_first_copy(rgb, payload_hex, size, 2 * tries)
    if first.found:
        return first
    from . import durable

    second = durable.match_copy(rgb, payload_hex, size, tries)
    if second.found:
        return second
    return WatermarkResult(
        first.scheme,
        False,
        confidence=first.confidence,
        bit_accuracy=first.bit_accuracy,
        details={
            **first.details,
            "mark": None,
            "durable": {k: second.details.get(k) for k in ("pilot_z", "copy", "error")},
        },
    )


def read_attempt(scores: np.ndarray, up: int, scale: float) -> dict:
    """One grid and strength's reading: raw message, check result, margin, and the decision."""
    msg = np.packbits(bits_from_scores(scores)).tobytes()
    ident, check = msg[: ID_BITS // 8], msg[ID_BITS // 8 :]
    margin = float(np.mean(np.abs(2.0 * scores - 1.0)))
    check_ok = check == _check(ident)
    return {
        "grid": "full" if up == 1 else "half-size",
        "strength": _strength(scale),
        "message": msg.hex(),
        "check_ok": bool(check_ok),
        "margin": round(margin, 4),
        "found": bool(check_ok and margin >= MARGIN_MIN),
    }


def result_from_attempts(attempts: list[dict], tried: int) -> WatermarkResult:
    """The decision over all attempts; ``tried``: how many grid x strength readings count
    towards the false-positive bound (each one is a 2^-24 chance)."""
    for att in attempts:
        if att.get("found"):
            return WatermarkResult(
                SCHEME,
                True,
                payload=att["message"][: ID_BITS // 4],
                confidence=1.0 - tried * 2.0**-CHECK_BITS,
                margin=att["margin"],
                details={
                    "grid": att["grid"],
                    "strength": att["strength"],
                    "margin_min": MARGIN_MIN,
                    "attempts": attempts,
                },
            )
    read = [att for att in attempts if "margin" in att]
    check_ok, margin = max(((a["check_ok"], a["margin"]) for a in read), default=(False, -1.0))
    details = {"margin_min": MARGIN_MIN, "attempts": attempts}
    if check_ok:
        details["note"] = "check bits match but the signal is below the margin threshold"
    return WatermarkResult(
        SCHEME, False, confidence=0.5 if check_ok else 0.0, margin=margin, details=details
    )


def decode(rgb: np.ndarray) -> WatermarkResult:
    """Look for fakestudio's mark; ``payload`` is the 10-hex-digit identifier when found.

    Tries the image's own block grid, then (for images up to ``HALF_GRID_MAX_PIXELS``) the grid
    of a source twice as large, for copies downscaled by 0.5; on each grid both strengths
    (``SCALES``: the blocks' singular values are computed once). ``confidence``: 1 - (readings
    tried) * 2^-24 when found, 0.5 when the check bits match but the margin is too weak, else 0.
    ``details["attempts"]`` lists each reading's raw 64-bit message, check result and margin.
    Never raises: unusable input gives ``found=False`` with ``details["error"]``.
    """
    try:
        a = np.asarray(rgb)
        if a.ndim < 2:
            raise ValueError(f"expected an image array, got shape {a.shape}")
        check_size(a.shape)
        a = as_rgb(a)
    except ValueError as e:
        return WatermarkResult(SCHEME, False, details={"error": str(e)})
    grids = grids_for(a.shape)
    attempts: list[dict] = []
    for up in grids:
        s0 = _grid_singular_values(a, up)
        for scale in SCALES:
            attempts.append(read_attempt(scores_at(s0, scale), up, scale))
            if attempts[-1]["found"]:
                return result_from_attempts(attempts, len(grids) * len(SCALES))
    return result_from_attempts(attempts, len(grids) * len(SCALES))
