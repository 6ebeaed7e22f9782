"""fakestudio's durable watermark: read blind after crops, resizes, rotations, flips and
colour edits.

The first mark (``ours``) lives on a fixed 4x4 block grid of the chroma: exact and cheap, but
any crop, rescale (other than 0.5x) or rotation moves the grid and erases it for anyone
without the creator's ledger. This one is read *blind* after those edits. Outputs labelled
before issue 24 carry both, with the same 40-bit identifier; since then this one alone (the
two together cost 2.7 dB of RGB PSNR and showed as colour blocks on smooth areas:
``bench/label_visibility.py``), and ``match`` takes over the first mark's other role, the
ledger's and the registry's known-payload test (see there).

Layout (keyed by ``_KEY``; the key is public on purpose: anyone must be able to read a label):

* A tile of ``TILE`` x ``TILE`` pixels (at unit 1) holds a 32 x 32 grid of ``CHIP``-pixel
  chips. ``N_PILOT`` chips (a keyed subset) carry a keyed +-1 *pilot*, the same in every
  fakestudio image; the others carry the message, with keyed signs: a 40-bit identifier and
  a 32-bit keyed check. Format 2 (``FORMAT``, what ``embed`` writes) encodes it with
  a rate-1/9 convolutional code (``convolutional``, 256 states, free distance 55), 720 bits
  punctured to one per data chip and scattered over the tile by a keyed permutation. Format
  1 (earlier labels, still read) BCH-encoded it (``bchlib``, t = ``BCH_T``) to 136 bits,
  each repeated over 5-6 chips: at the signal a halved, re-encoded copy leaves, the
  repetition wasted about a quarter of what the chips carry. The chips are band-passed
  (``BLUR``, ``LOWCUT``) to the mid frequencies that JPEG, WebP, resizing and blur keep, and
  that the decoder listens to.
* The tile repeats over the whole picture (periodic tiling, after Kutter 1998), at
  ``unit = max(1, short side // 512)`` pixels per tile pixel, so a big photo downscaled for
  the web still carries it at a readable size.
* A synchronisation template is added: gratings along both axes at ``TEMPLATE_K`` cycles per
  period (not whole numbers, so their spectral peaks fall between the tiling's lines); it
  takes ``TEMPLATE_SHARE`` of the mark's energy, and only ``TEMPLATE_FLAT`` of its weight in
  flat areas, where a regular plaid would show.
* The sum is added to the luma only (R, G and B move together: chroma, where an old label's
  first mark lives, is untouched), scaled by a perceptual mask (local activity, bounded by
  ``MASK_MIN``..``MASK_MAX`` grey levels) and then down to ``PSNR_TARGET`` when needed.

Decoding (``decode``), on a bounded view (longest side <= ``VIEW_MAX``: a 4000 px photo costs
little more than a 1000 px one):

1. Luma residual (high-pass), each pixel divided by its neighbourhood's spread, so texture
   and edges do not drown the mark.
2. Lattice hypotheses (``_lattices``): the picture as labelled (crops, flips and colour edits
   keep the period), the picture resized whole from a labelled size whose short side was a
   multiple of 512 (the period is then an eighth of the short side), a crop of a picture
   labelled at the next unit (when the short side is no multiple of 512), then the template: the whitened spectrum of a centred window is scored
   at every (radius, angle) by its two gratings' peaks and their quarter-turned partners;
   the best overall, the best at angle 0 (a resize) and the best at the expected radius (a
   rotation) are refined to sub-bin precision. Then the tiling itself: the residual's
   autocorrelation peaks at every period vector with all of the chips' energy; its strongest
   peaks (scored with their quarter-turned partners, reduced to the fundamental) are refined
   by least squares over their multiples. Each hypothesis is a 2x2 matrix: the two period
   vectors. (Measured on the 28 bench pictures: the autocorrelation lattices lifted crop +
   resize back from 25 to 27, rotations and upscales to 28.)
3. For each: the residual is resampled onto the lattice and *folded* (all periods summed),
   so any window of a few periods holds the whole message. The fold is whitened
   (``_whiten``: each frequency divided by the square root of the fold's own smoothed power,
   plus a floor), so what is left of the picture counts by how loud it is where the mark
   lives (measured on the 26 bench photos halved + JPEG 85, four sets of identifiers: 21,
   20, 21, 19 identified before, 23, 23, 23, 22 after, and found 21-22 -> 24; the chain crop
   + 0.75x + JPEG 75 25 -> 26; nothing lost elsewhere). The fold's orientation (the 8
   symmetries of the square: mirrored copies read too) and cyclic shift come from the
   pilot's correlation at every shift at once (FFT), as a z-score.
4. The best near miss (``POLISH_Z`` <= z) is polished by coordinate ascent of z over scale,
   aspect and angle (``_polish``): folding many periods needs the lattice to ~0.1%.
5. Data chips are read at that alignment (soft values) and decoded. Format 2: the list
   Viterbi decoder proposes the ``LIST_SIZE`` codewords closest to the soft values, and the
   first whose check bits equal the keyed hash wins (CRC-aided list decoding; on simulated
   soft values at 0.45 of the noise per chip 95% of messages, against 40% for format 1's
   decoder). Format 1: BCH on the hard bits, then ordered-statistics decoding (OSD, order
   2) over the reliabilities. Measured on the 26 bench photos halved + JPEG 85, four sets
   of identifiers: 23, 23, 23, 22 identified with format 1, 26, 26, 26, 26 with format 2
   and the resized-whole lattice (24 each with format 2 alone: the period was missed).

Decision and false positives (the argued bound):

* ``found`` with a ``payload`` when a decoded codeword's 32 check bits equal the keyed hash of
  its 40 identifier bits. For a picture that does not carry the mark, the data chips' keyed
  signs are independent of the picture and of the alignment (which uses only the pilot), so
  the soft values' distribution is unchanged by flipping the signs of any codeword; both
  codes are linear and their decoders (list Viterbi; BCH and OSD) commute with those flips,
  so every codeword they propose is uniform over its code, and its check matches with
  probability exactly 2^-32. At most ``LIST_SIZE`` + ``CHECK_TRIALS`` codewords per lattice,
  ``LATTICE_TRIES`` + 1 lattices (a polished one included) in each of ``VIEWS`` views:
  <= 960 x 2^-32 = 2.2e-7.
* ``found`` without a payload ("a fakestudio label is present, its identifier unreadable")
  when the pilot's z reaches ``Z_PRESENCE``. At each shift the score is a sum of independent
  +-1 pilot signs weighted by the picture's fold, divided by the exact norm of the weights, so
  by Hoeffding P(z >= t) <= exp(-t^2 / 2), whatever the picture holds. Union over the
  orientations and shifts tried (2 views x (9 lattices x 8 + 36 polishing steps) x 64^2
  shifts): 884,736 x exp(-7.8^2 / 2) = 5.4e-8.
* In all ``false_positive_bound()`` = 2.8e-7 per picture, for any picture not crafted with the
  key. Measured: 0 detections on the fixtures, their edits and 10,000 synthetic pictures
  (noise, flat colours, gradients, stripes, text): ``bench/watermark_robustness.py --fp``.

Robustness, quality and cost are measured by ``bench/watermark_robustness.py``; the table and
how to reproduce it are in ``docs/watermark.md``. numpy and OpenCV (imported on first use) and
bchlib; never torch.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re

import numpy as np

from . import convolutional
from .result import WatermarkResult

__all__ = [
    "ALG",
    "ALGS",
    "ALG_V1",
    "SCHEME",
    "decode",
    "decode_unless",
    "embed",
    "match",
    "match_copy",
    "message_bits",
]

SCHEME = "fakestudio-durable"
ALG = "org.fakestudio.wm.durable.v2"  # the C2PA soft-binding algorithm name (format 2)
ALG_V1 = "org.fakestudio.wm.durable.v1"  # labels written in format 1 (still read)
ALGS = {2: ALG, 1: ALG_V1}  # format -> soft-binding algorithm name
ID_BITS = 40
CHECK_BITS = 32
MSG_BITS = ID_BITS + CHECK_BITS
BCH_T = 8  # errors BCH corrects on its own (GF(2^8): 64 parity bits; OSD reads far more)
FORMAT = 2  # what embed writes: 2 = the convolutional code over all data chips, 1 = BCH x 5
LIST_SIZE = 32  # format 2: list Viterbi candidates whose check is compared, per lattice
TILE = 64  # tile period in pixels at unit 1
CHIP = 2  # chip side in pixels at unit 1
CHIPS = TILE // CHIP  # chips per tile side
N_CHIPS = CHIPS * CHIPS
N_PILOT = 320
BLUR = 0.6  # Gaussian smoothing of the chip pattern (pixels at unit 1)
LOWCUT = 1.5  # the chip pattern keeps little below the frequencies of this Gaussian
TEMPLATE_K = (7.5, 10.5)  # template gratings: cycles per tile period along each axis
TEMPLATE_FLAT = 0.3  # the template's weight where the picture is flat (see embed)
TEMPLATE_SHARE = 0.45  # of the mark's energy
PSNR_TARGET = 40.5  # dB over RGB; the mark is scaled down to this, never up
MASK_MIN, MASK_MAX = 1.5, 6.0  # luma amplitude bounds of the perceptual mask (grey levels)
MASK_GAIN = 0.5  # amplitude per grey level of local standard deviation
FILL_MAX = 2.0  # the chips of a smooth picture may grow this much to fill the budget
VIEW_MAX = 1024  # the decoder works on a view whose longest side is at most this
SPECTRUM_MAX = 768  # side of the window whose spectrum shows the template (view centre)
PERIOD_MIN, PERIOD_MAX = 24.0, 190.0  # periods searched in the view (pixels)
SYNC_SCALE = 1.0  # the template is searched in a residual made for this scale
HALF_VIEW_MIN = 512  # a half-size view is tried when it keeps at least this many pixels a side
VIEWS = 2  # the view, and the half-size view
LATTICE_TRIES = 9  # as labelled, resized whole, cropped from the next unit, 3 + 3 searched
AC_TRIES = 3  # lattices tried from the autocorrelation
AC_PEAKS = 8  # its strongest peaks, which those lattices must explain
AC_WINDOW = 512  # side of the window whose autocorrelation shows the tiling
OSD_WINDOW = MSG_BITS  # pairs of flips tried among this many least reliable basis positions
CHECK_TRIALS = 16  # codewords whose check is compared, per lattice (BCH's, then OSD's best)
Z_PRESENCE = 7.8
Z_DECODE = 4.8  # below this pilot z the data chips are not decoded at all
Z_LIST = 5.5  # below this only format 2's Viterbi path is checked, not the whole list
Z_SEEN = 6.5  # at or above this the mark is taken as seen in a view (no half-size view)
WHITEN_FLOOR = 0.6  # of the fold's mean power, added before whitening (see _whiten)
WHITEN_SMOOTH = 2.0  # frequency bins over which the fold's power is averaged
POLISH_Z = 5.0  # a near miss at least this strong is polished (see _polish)
POLISH_MAX = 36  # evaluations a polish may take (3 step sizes x 2 passes x 6 moves)
MATCH_Z_MIN = 7.0  # known-payload match: the least correlation z accepted (see match)
MATCH_P_MAX = 1e-6  # known-payload match: the largest p-value accepted (as the first mark's)
MIN_SIDE = 128

_KEY = b"fakestudio-durable-v1"
_HEX_ID = re.compile(r"^[0-9a-fA-F]{10}$")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# --------------------------------------------------------------------------- keyed layout


def _rng(tag: bytes) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(_KEY + tag).digest()[:8], "big"))


@functools.cache
def _bch():
    import bchlib

    return bchlib.BCH(BCH_T, m=8)


@functools.cache
def _layout() -> dict:
    """Chip roles and signs, and the FFTs the decoder correlates with (computed once)."""
    n_coded = MSG_BITS + _bch().ecc_bits
    rng = _rng(b"layout")
    perm = rng.permutation(N_CHIPS)
    pilot, data = perm[:N_PILOT], perm[N_PILOT:]
    pilot_sign = rng.choice(np.array([-1.0, 1.0]), N_PILOT)
    data_sign = rng.choice(np.array([-1.0, 1.0]), data.size)
    data_bit = rng.permutation(np.arange(data.size) % n_coded)
    # format 2: the convolutional codeword punctured to the data chips' number (evenly spread
    # positions dropped), its bits scattered over the chips by a keyed permutation
    full = convolutional.coded_length(MSG_BITS)
    dropped = np.round(np.linspace(0, full - 1, full - data.size)).astype(int)
    kept = np.setdiff1d(np.arange(full), dropped)
    data_pos = _rng(b"layout-v2").permutation(data.size)
    kernel = _chip_kernel()
    pil = np.zeros((TILE, TILE))
    ind = np.zeros((TILE, TILE))
    r, c = np.divmod(pilot, CHIPS)
    pil[r * CHIP, c * CHIP] = pilot_sign
    ind[r * CHIP, c * CHIP] = 1.0
    return {
        "n_coded": n_coded,
        "pilot": pilot,
        "data": data,
        "pilot_sign": pilot_sign,
        "data_sign": data_sign,
        "data_bit": data_bit,
        "coded_full": full,
        "coded_kept": kept,
        "data_pos": data_pos,
        "kernel_f": np.conj(np.fft.fft2(kernel)),
        # single-precision copies, for the search over every alignment (_align)
        "kernel_f32": np.conj(np.fft.fft2(kernel)).astype(np.complex64),
        "pilot_f32": np.conj(np.fft.fft2(pil)).astype(np.complex64),
        "ind_f32": np.conj(np.fft.fft2(ind)).astype(np.complex64),
    }


def _gauss_f(sigma: float, n: int = TILE) -> np.ndarray:
    f = np.fft.fftfreq(n)
    g = np.exp(-2.0 * (math.pi * sigma) ** 2 * f**2)
    return np.outer(g, g)


def _band_f() -> np.ndarray:
    """The chips' band: smoothed (the top octave is lost to JPEG and resizing), minus the
    lowest frequencies (the decoder's residual drops them, and they are the most visible)."""
    return _gauss_f(BLUR) * (1.0 - _gauss_f(LOWCUT))


def _chip_kernel() -> np.ndarray:
    """One chip's footprint (a CHIP x CHIP box at the origin, band-passed), circular."""
    box = np.zeros((TILE, TILE))
    box[:CHIP, :CHIP] = 1.0
    return np.real(np.fft.ifft2(np.fft.fft2(box) * _band_f()))


# --------------------------------------------------------------------------- message


def _ident(payload_hex: str) -> bytes:
    if not isinstance(payload_hex, str) or not _HEX_ID.match(payload_hex):
        raise ValueError(f"payload must be 10 hex digits (40 bits), got {payload_hex!r}")
    return bytes.fromhex(payload_hex)


def _check(ident: bytes) -> bytes:
    return hashlib.sha256(_KEY + b"check" + ident).digest()[: CHECK_BITS // 8]


def message_bits(payload_hex: str, fmt: int = FORMAT) -> np.ndarray:
    """The coded bits for a payload (0/1): the message is the identifier and its check (MSB
    first); format 1 appends BCH parity (136 bits), format 2 is the convolutional codeword
    punctured to one bit per data chip (704 bits)."""
    ident = _ident(payload_hex)
    msg = ident + _check(ident)
    if fmt == 2:
        bits = np.unpackbits(np.frombuffer(msg, dtype=np.uint8))
        return convolutional.encode(bits)[_layout()["coded_kept"]]
    ecc = _bch().encode(msg)
    bits = np.unpackbits(np.frombuffer(msg + bytes(ecc), dtype=np.uint8))
    return bits[: _layout()["n_coded"]]


@functools.lru_cache(maxsize=64)
def _tile(payload_hex: str, fmt: int = FORMAT) -> np.ndarray:
    """The TILE x TILE pattern (unit RMS) for a payload."""
    lay = _layout()
    chips = np.zeros(N_CHIPS)
    chips[lay["pilot"]] = lay["pilot_sign"]
    coded = message_bits(payload_hex, fmt).astype(np.float64) * 2.0 - 1.0
    chips[lay["data"]] = lay["data_sign"] * coded[lay["data_pos" if fmt == 2 else "data_bit"]]
    grid = np.kron(chips.reshape(CHIPS, CHIPS), np.ones((CHIP, CHIP)))
    t = np.real(np.fft.ifft2(np.fft.fft2(grid) * _band_f()))
    t /= np.sqrt(np.mean(t**2))
    t.setflags(write=False)
    return t


def _template(height: int, width: int, u: int) -> np.ndarray:
    """The synchronisation template: gratings of ``TEMPLATE_K`` cycles per tile period along
    each axis, unit RMS. The K are not whole numbers, so the peaks sit between the spectral
    lines of the tiled chips; the decoder reads scale and rotation from them."""
    out = np.zeros((height, width), dtype=np.float32)
    for k in TEMPLATE_K:
        f = 2.0 * math.pi * k / (TILE * u)
        out += np.cos(np.arange(height, dtype=np.float32) * f)[:, None]
        out += np.cos(np.arange(width, dtype=np.float32) * f)[None, :]
    return out / math.sqrt(len(TEMPLATE_K))


# --------------------------------------------------------------------------- embedding


def unit(height: int, width: int) -> int:
    """Pixels per tile pixel: the mark scales with the picture, so a downscaled copy of a big
    photo still carries it at a readable size."""
    return max(1, min(height, width) // 512)


def _luma(a: np.ndarray) -> np.ndarray:
    y = a[..., 0].astype(np.float32) * _LUMA[0]
    y += a[..., 1].astype(np.float32) * _LUMA[1]
    y += a[..., 2].astype(np.float32) * _LUMA[2]
    return y


def _mask(y: np.ndarray, u: int) -> np.ndarray:
    """Amplitude per pixel (grey levels): local standard deviation, bounded both ways."""
    import cv2

    k = (4 * u + 1, 4 * u + 1)
    mean = cv2.blur(y, k)
    var = np.maximum(cv2.blur(y * y, k) - mean * mean, 0.0)
    m = np.clip(MASK_GAIN * np.sqrt(var), MASK_MIN, MASK_MAX)
    return cv2.GaussianBlur(m, (0, 0), 2.0 * u)


def pattern(
    payload_hex: str, height: int, width: int, fmt: int = FORMAT
) -> tuple[np.ndarray, np.ndarray]:
    """The mark's two parts covering a height x width picture (float32): the tiled chips and
    the template, weighted by their shares of a unit-RMS mark."""
    import cv2

    t = _tile(payload_hex, fmt).astype(np.float32)
    u = unit(height, width)
    if u > 1:  # upsample periodically: resize a 3x3 tiling, keep its centre
        big = cv2.resize(np.tile(t, (3, 3)), None, fx=u, fy=u, interpolation=cv2.INTER_CUBIC)
        t = big[TILE * u : 2 * TILE * u, TILE * u : 2 * TILE * u]
    p = TILE * u
    chips = np.tile(t, (-(-height // p), -(-width // p)))[:height, :width]
    a, b = math.sqrt(1.0 - TEMPLATE_SHARE), math.sqrt(TEMPLATE_SHARE)
    return a * chips, b * _template(height, width, u)


def embed(rgb: np.ndarray, payload_hex: str, fmt: int = FORMAT) -> np.ndarray:
    """Return a copy of ``rgb`` (uint8, H x W x 3, sides >= ``MIN_SIDE``) carrying the durable
    mark for ``payload_hex`` (10 hex digits). Only luma changes; PSNR about ``PSNR_TARGET`` dB
    or better. Raises ``ValueError`` for a malformed payload or a picture too small.
    ``fmt`` 1 writes the first format (for tests that old labels still read)."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] < 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 array, got {a.dtype} {a.shape}")
    a = a[..., :3]
    h, w = a.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image is {w}x{h}: the durable mark needs at least {MIN_SIDE} px a side")
    chips, template = pattern(payload_hex, h, w, fmt)
    mask = _mask(_luma(a), unit(h, w))
    # the template is the mark's only regular structure: in flat areas, where a plaid would
    # show, it gets TEMPLATE_FLAT of its weight, rising to all of it at twice the mask's floor
    flat = np.clip(mask / MASK_MIN - 1.0, TEMPLATE_FLAT, 1.0)
    chips *= mask
    template *= flat * mask
    limit = 255.0 / 10.0 ** (PSNR_TARGET / 20.0)
    d = chips * _fill_gain(chips, template, limit) + template
    rms = float(np.sqrt(np.mean(d * d)))
    if rms > limit:
        d *= limit / rms
    out = a.astype(np.float32) + d[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _fill_gain(chips: np.ndarray, template: np.ndarray, limit: float) -> float:
    """Gain of the chips that brings a smooth picture's mark up to the PSNR budget (the
    mask's floor alone leaves it far below: JPEG 50 and halving then erase it), at most
    ``FILL_MAX``. Only the chips grow: they are noise-like, the template is a regular
    pattern that would show on flat areas. Solves mean((g * chips + template)^2) = limit^2."""
    a = float(np.mean(chips * chips))
    b = float(np.mean(chips * template))
    c = float(np.mean(template * template)) - limit * limit
    if a <= 0.0 or c >= 0.0:
        return 1.0
    g = (-b + math.sqrt(b * b - a * c)) / a
    return float(np.clip(g, 1.0, FILL_MAX))


# --------------------------------------------------------------------------- decoding


def _view(a: np.ndarray) -> tuple[np.ndarray, float]:
    """The luma the decoder reads (float32) and its scale: the picture itself up to
    ``VIEW_MAX`` px a side, else its luma (OpenCV's, rounded) reduced by area averaging, so a
    4000 px photo costs one colour conversion and one resize of a single channel."""
    import cv2

    h, w = a.shape[:2]
    f = VIEW_MAX / max(h, w)
    if f >= 1.0:
        return _luma(a), 1.0
    size = (max(1, round(w * f)), max(1, round(h * f)))
    grey = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32), f


def _residual(y: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """High-pass luma for a mark at ``scale`` view pixels per tile pixel (an upscaled copy
    carries it at lower frequencies), each pixel divided by its neighbourhood's spread."""
    import cv2

    r = y - cv2.GaussianBlur(y, (0, 0), 2.5 * scale)
    # weight by 1 / local spread: texture and edges are loud, the mark is not
    local = np.sqrt(cv2.GaussianBlur(r * r, (0, 0), 4.0 * scale)) + 1.0
    r = r / local
    return np.clip(r, -2.5, 2.5)


def _sample(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of a float32 img at (x, y) relative to its centre; 0 outside."""
    import cv2

    h, w = img.shape
    shape = np.shape(x)
    count = int(np.prod(shape))
    rows = -(-count // 1024)  # remap wants a 2-D map of fewer than 32767 rows

    def grid(v, centre):
        flat = np.zeros(rows * 1024, dtype=np.float32)
        flat[:count] = np.ravel(v) + centre
        return flat.reshape(rows, 1024)

    v = cv2.remap(
        img,
        grid(x, w // 2),
        grid(y, h // 2),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return v.ravel()[:count].reshape(shape)


def _same_lattice(m: np.ndarray, n: np.ndarray, scale: float = 0.005, deg: float = 0.3) -> bool:
    ratio = np.linalg.norm(m[:, 0]) / np.linalg.norm(n[:, 0])
    turn = math.atan2(m[1, 0], m[0, 0]) - math.atan2(n[1, 0], n[0, 0])
    ang = abs((turn + math.pi / 4) % (math.pi / 2) - math.pi / 4)
    return abs(ratio - 1) < scale and ang < math.radians(deg)


def _vertex(lo: float, mid: float, hi: float) -> float:
    """Offset of the top of the parabola through three equally spaced samples."""
    den = lo - 2.0 * mid + hi
    return 0.0 if den >= 0 else float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5))


def _template_lattices(r: np.ndarray, expected: float) -> list[np.ndarray]:
    """Lattices (2x2, columns = the two period vectors in view pixels) from the template's
    two spectral peaks, which sit at right angles at equal distance from the origin.

    Every (radius, angle) is scored by the whitened spectrum at the peak and at its partner
    turned by 90 degrees (so weak peaks count together, not only those that stand out
    alone). Three hypotheses come back: the best overall, the best at angle 0 (a resize),
    and the best at the radius of the picture as labelled, ``expected`` view pixels a
    period (a rotation). Each is refined to sub-bin precision."""
    import cv2

    h, w = r.shape
    n = min(h, w, SPECTRUM_MAX)
    y0, x0 = (h - n) // 2, (w - n) // 2
    hann = np.hanning(n).astype(np.float32)
    win = r[y0 : y0 + n, x0 : x0 + n] * np.outer(hann, hann)
    mag = _magnitude(win)
    ring = cv2.blur(mag, (9, 9)) * 81.0 - cv2.blur(mag, (3, 3)) * 9.0  # around, not on, a peak
    ratio = mag / (ring / 72.0 + 1e-6)
    smooth = cv2.GaussianBlur(ratio, (0, 0), 0.7)
    k0, ks = TEMPLATE_K[0], np.asarray(TEMPLATE_K) / TEMPLATE_K[0]
    lo, hi = n * k0 / PERIOD_MAX, min(n * k0 / PERIOD_MIN, (n // 2 - 3) / ks.max())
    radii = np.arange(lo, hi, 0.5)
    angles = np.deg2rad(np.arange(-45.0, 45.0, 0.4))
    rr, tt = np.meshgrid(radii, angles, indexing="ij")
    x, y = rr * np.cos(tt), rr * np.sin(tt)
    score = sum(_sample(smooth, f * x, f * y) + _sample(smooth, -f * y, f * x) for f in ks)
    picks = [np.unravel_index(int(np.argmax(score)), score.shape)]
    j0 = int(np.argmin(np.abs(angles)))
    picks.append((int(np.argmax(score[:, j0])), j0))
    i0 = int(np.argmin(np.abs(radii - n * k0 / expected)))
    if abs(radii[i0] - n * k0 / expected) <= 1.0:
        picks.append((i0, int(np.argmax(score[i0]))))
    logmag = np.log(mag + 1e-6)
    out = []
    for i, j in dict.fromkeys(picks):
        # each peak, refined, as an estimate of the first grating's vector: the edits met in
        # the wild are similarities (scale, turn, flip), so a peak and its quarter-turned
        # partner estimate the same vector; averaging them all shrinks the error
        est = []
        for f in ks:
            a = _peak_at(logmag, f * x[i, j], f * y[i, j], n) / f
            b = _peak_at(logmag, -f * y[i, j], f * x[i, j], n) / f
            est += [a, np.array([b[1], -b[0]])]
        a = np.mean(est, axis=0)
        g = np.column_stack([a, [-a[1], a[0]]]) / n  # cycles per view pixel
        if abs(np.linalg.det(g)) > 1e-9:
            out.append(TILE * np.linalg.inv((TILE / k0) * g).T)
    return out


def _magnitude(win: np.ndarray) -> np.ndarray:
    """|FFT| of a real n x n window, origin at (n // 2, n // 2), float32: computed as a real
    FFT (half the work) and completed by the symmetry |F(-u, -v)| = |F(u, v)|."""
    n = win.shape[0]
    half = np.abs(np.fft.rfft2(win)).astype(np.float32)  # columns 0 .. n // 2
    full = np.empty((n, n), dtype=np.float32)
    full[:, : half.shape[1]] = half
    cols = np.arange(half.shape[1], n)  # negative frequencies: -(n - col)
    full[:, cols] = half[(-np.arange(n)) % n][:, n - cols]
    return np.fft.fftshift(full)


def _peak_at(logmag: np.ndarray, x: float, y: float, n: int) -> np.ndarray:
    """The local maximum of a centred map (a spectrum, an autocorrelation) within a bin of
    (x, y), to sub-bin precision."""
    c = n // 2
    cx, cy = int(round(x)) + c, int(round(y)) + c
    win = logmag[cy - 1 : cy + 2, cx - 1 : cx + 2]
    dy, dx = np.unravel_index(int(np.argmax(win)), win.shape)
    py, px = cy - 1 + dy, cx - 1 + dx
    if not (1 <= px < n - 1 and 1 <= py < n - 1):
        return np.array([x, y])
    fx = _vertex(logmag[py, px - 1], logmag[py, px], logmag[py, px + 1])
    fy = _vertex(logmag[py - 1, px], logmag[py, px], logmag[py + 1, px])
    return np.array([px + fx - c, py + fy - c], dtype=np.float64)


def _lattices(r: np.ndarray, shape, factor: float, as_labelled: bool = True) -> list[np.ndarray]:
    """Lattice hypotheses, most likely first: the picture as labelled (no resize, no turn:
    crops, flips and colour edits keep the grid's size); the picture resized whole from a
    labelled size whose short side was a multiple of 512 (every SD 1.5, SDXL and Flux size:
    the period is then an eighth of the short side, whatever the resize); then the template's
    spectral peaks, and (in the first view) the tiling's own autocorrelation peaks. A picture
    whose short side is no multiple of 512 may also be a crop of one labelled at the next
    unit (one period more).
    Duplicates are dropped; at most LATTICE_TRIES. (The second was added for halved copies of
    512 px pictures, where the unit cannot follow below 1: on the 26 bench photos halved +
    JPEG 85 the template missed the period of 2, and was 0.6% off on others.)"""
    period = TILE * unit(*shape[:2]) * factor
    out = [np.eye(2) * period] if as_labelled else []
    found = [np.eye(2) * (min(shape[:2]) / 8.0) * factor] if as_labelled else []
    if as_labelled and min(shape[:2]) % 512:
        # a short side that is no multiple of 512 may be a crop of a picture labelled at the
        # next unit (an 80% crop of a 1024 px output has a 128 px period, not 64)
        found.append(np.eye(2) * (period + TILE * factor))
    found += _template_lattices(r, period)
    if as_labelled:
        found += _autocorr_lattices(r)
    for m in found:
        if _plausible(m) and all(not _same_lattice(m, f) for f in out):
            out.append(m)
    return out[:LATTICE_TRIES]


def _autocorr_lattices(r: np.ndarray) -> list[np.ndarray]:
    """Lattices from the residual's autocorrelation: the tiled chips repeat, so it peaks at
    every period vector, with all of the chips' energy (the template holds less than half
    of the mark's, and texture near its frequencies can hide it). The spectrum is whitened
    and its strongest lines clipped first (the template's gratings would ripple the whole
    map), a peak and its quarter-turned partner are scored together, a multiple of the period
    gives way to the fundamental, and each vector is refined on all of its multiples in the
    window (to ~0.1%, which folding many periods needs)."""
    import cv2

    h, w = r.shape
    n = min(h, w, AC_WINDOW)
    n -= 1 - n % 2  # odd: the zero lag is a pixel, and a quarter turn maps the map onto itself
    y0, x0 = (h - n) // 2, (w - n) // 2
    win = r[y0 : y0 + n, x0 : x0 + n].astype(np.float32)
    spec = np.fft.rfft2(win - win.mean())
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    power = np.minimum(power / (cv2.GaussianBlur(power, (0, 0), 4.0) + 1e-6), 6.0)
    acf = np.fft.fftshift(np.fft.irfft2(power, s=(n, n)).astype(np.float32))
    acf = cv2.GaussianBlur(acf / max(float(acf[n // 2, n // 2]), 1e-9), (0, 0), 0.6)
    both = acf + np.rot90(acf)  # a lattice vector and its partner turned by 90 degrees
    c = n // 2
    peaks = _lag_ring(n) & (both == cv2.dilate(both, np.ones((5, 5), np.uint8)))
    ys, xs = np.nonzero(peaks)
    top = np.argsort(-both[ys, xs])[:AC_PEAKS]
    points = [complex(xs[o] - c, ys[o] - c) for o in top]
    peak = cv2.dilate(both, np.ones((3, 3), np.uint8))
    floor = float(peak[_lag_ring(n)].mean())
    # every lattice point peaks, not only the period vectors: each strong peak is g times a
    # period vector b for some Gaussian integer g (the lattice is square). The candidates b
    # are the strong peaks divided by small g; each is scored by the map at all the lattice
    # points it predicts (a third of the period predicts nine times the points, most of them
    # empty, so texture peaks that fit it do not make it win; see _lattice_score).
    cands = {}
    for p in points[:AC_TRIES]:
        for g in (1, *_GAUSSIAN):
            b = p / g
            if abs(b) < 0.9 * PERIOD_MIN:
                continue
            b *= 1j ** -round(math.atan2(b.imag, b.real) / (math.pi / 2))  # into [-45, 45)
            key = (round(b.real, 1), round(b.imag, 1))
            if key not in cands:
                cands[key] = (_lattice_score(peak, b, floor), abs(b), b)
    out: list[np.ndarray] = []
    for _, _, b in sorted(cands.values(), key=lambda t: (-t[0], -t[1])):
        v = _refine_period(acf, np.array([b.real, b.imag]))
        m = np.column_stack([v, [-v[1], v[0]]])
        if not _plausible(m) or any(_same_lattice(m, u) for u in out):
            continue
        out.append(m)
        if len(out) == AC_TRIES:
            break
    return out


def _lattice_score(peak: np.ndarray, b: complex, floor: float) -> float:
    """How well the square lattice of period vector b fits the (quarter-turn symmetric)
    autocorrelation map: its value summed over every lattice point b predicts in the map
    (one of each +- pair, the origin excluded), over the square root of their count, like a
    matched filter: the true lattice has all its points raised, a sub-lattice has mostly
    empty ones, a multiple too few. ``peak`` is the map's largest value within a pixel of
    each lag, ``floor`` its mean (what a point with nothing there reads)."""
    c = peak.shape[0] // 2
    reach = c - 3
    k = int(reach // abs(b)) + 1
    i, j = np.mgrid[0 : k + 1, -k : k + 1]
    keep = (i > 0) | (j > 0)
    pts = (i[keep] + 1j * j[keep]) * b
    pts = pts[np.abs(pts) <= reach]
    if pts.size == 0:
        return -np.inf
    xs = np.rint(pts.real).astype(int) + c
    ys = np.rint(pts.imag).astype(int) + c
    return float((peak[ys, xs] - floor).sum() / math.sqrt(pts.size))


# Gaussian integers i + j*1j of norm 2..20 (one per quarter-turn class), largest first
_GAUSSIAN = sorted(
    {complex(i, j) for i in range(1, 5) for j in range(0, 5) if 2 <= i * i + j * j <= 20},
    key=lambda g: -abs(g),
)


@functools.lru_cache(maxsize=8)
def _lag_ring(n: int) -> np.ndarray:
    """The lags of an n x n centred map that can be a period vector: length in the searched
    range, angle in [-45, 45) degrees (the other three quarters are the same lattice)."""
    c = n // 2
    yy, xx = np.mgrid[-c : c + 1, -c : c + 1]
    radius, angle = np.hypot(xx, yy), np.arctan2(yy, xx)
    ring = (radius >= PERIOD_MIN) & (radius <= min(PERIOD_MAX, c - 4))
    ring &= (angle >= -math.pi / 4) & (angle < math.pi / 4)
    ring.setflags(write=False)
    return ring


def _refine_period(acf: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The period vector by least squares over its multiples' peaks (sub-pixel each)."""
    c = acf.shape[0] // 2
    num, den, k = np.zeros(2), 0.0, 1
    while np.max(np.abs(k * v)) <= c - 3:
        q = _peak_at(acf, *(k * v), acf.shape[0])
        num, den = num + k * q, den + k * k
        v = num / den  # the estimate so far guides the search for the next multiple
        k += 1
    return v


def _plausible(m: np.ndarray) -> bool:
    """A lattice of two independent vectors, each a period in the searched range."""
    if not np.all(np.isfinite(m)):
        return False
    a, b = np.linalg.norm(m[:, 0]), np.linalg.norm(m[:, 1])
    det = abs(float(np.linalg.det(m)))
    return (
        0.5 * PERIOD_MIN <= min(a, b)
        and max(a, b) <= 2.0 * PERIOD_MAX
        and det >= 0.5 * a * b  # not degenerate: the vectors are at least 30 degrees apart
    )


def _fold(r: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Resample the residual onto the lattice (TILE samples a period) and sum all periods.
    A period of at most TILE / 2 view pixels is folded at TILE / 2 samples (the view holds no
    more) and doubled by linear interpolation: the same fold as resampling the view at TILE
    samples, at a quarter of the warp's work (small periods are frequent wrong guesses on an
    unmarked picture: 44.6 -> 37.2 ms a 512 px decode)."""
    period = float(np.sqrt(abs(np.linalg.det(m))))
    if period <= TILE // 2:
        n, k = TILE // 2, 0
    else:
        k = max(1, int(period // TILE))  # oversample large periods, then average down
        n = TILE * k
    a = m / n  # canvas pixel -> view pixel
    h, w = r.shape
    inv = np.linalg.inv(a)
    corners = inv @ np.array([[0, w, 0, w], [0, 0, h, h]], dtype=np.float64)
    lo = np.floor(corners.min(axis=1))
    hi = np.ceil(corners.max(axis=1))
    size = (hi - lo).astype(int)
    cols, rows = int(-(-size[0] // n) * n), int(-(-size[1] // n) * n)
    if cols * rows > 64 * 1024 * 1024:
        return np.zeros((TILE, TILE))
    origin = a @ lo
    if np.array_equal(a, np.eye(2)) and not lo.any():  # the lattice as labelled: no warp
        canvas = np.zeros((rows, cols), dtype=np.float32)
        canvas[:h, :w] = r
    else:
        canvas = _warp(r, a, origin, cols, rows)
    f = canvas.reshape(rows // n, n, cols // n, n).sum(axis=(0, 2), dtype=np.float64)
    if k > 1:
        f = f.reshape(TILE, k, TILE, k).sum(axis=(1, 3))
    if k == 0:
        f = _double(_double(f, 0), 1)
    return f


def _double(x: np.ndarray, axis: int) -> np.ndarray:
    """A periodic array at twice the samples along ``axis``, by linear interpolation."""
    x = np.moveaxis(x, axis, 0)
    out = np.empty((2 * x.shape[0], *x.shape[1:]))
    out[0::2] = x
    out[1::2] = 0.5 * (x + np.roll(x, -1, axis=0))
    return np.moveaxis(out, 0, axis)


def _warp(r: np.ndarray, a: np.ndarray, origin: np.ndarray, cols: int, rows: int) -> np.ndarray:
    import cv2

    warp = np.hstack([a, origin[:, None]]).astype(np.float64)
    return cv2.warpAffine(
        r.astype(np.float32),
        warp,
        (cols, rows),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )


def _whiten(fold: np.ndarray) -> np.ndarray:
    """The fold with each frequency divided by the square root of the fold's own power there
    (smoothed over ``WHITEN_SMOOTH`` bins, made symmetric under the square's 8 symmetries so
    every orientation sees the same filter, plus ``WHITEN_FLOOR`` of its mean): what is left
    of the picture is loudest at low frequencies and along its edges' directions, and counts
    less; where a resize or JPEG emptied a band (mark and picture alike) the floor keeps the
    filter from amplifying nothing. The weights depend on the picture only, never on the key."""
    from detectors.filters import gaussian

    spec = np.fft.fft2(fold)
    power = np.abs(spec) ** 2
    power = power + power.T
    power = power + np.roll(power[::-1, :], 1, axis=0)  # frequency k -> -k along each axis
    power = power + np.roll(power[:, ::-1], 1, axis=1)
    power = gaussian(power, WHITEN_SMOOTH, mode="wrap")
    mean = float(power.mean())
    if mean <= 0.0:
        return fold
    return np.real(np.fft.ifft2(spec / np.sqrt(power / mean + WHITEN_FLOOR)))


def _d4(f: np.ndarray) -> tuple[list[tuple[int, bool]], np.ndarray]:
    """The 8 symmetries of the square applied to a fold: (names, stack of 8 arrays)."""
    names, arrays = [], []
    for flip in (False, True):
        g = f.T if flip else f
        for rot in range(4):
            names.append((rot, flip))
            arrays.append(np.rot90(g, rot))
    return names, np.stack(arrays)


def _align(fold: np.ndarray, only=None) -> tuple[float, tuple, tuple[int, int], np.ndarray]:
    """Best (z, orientation, shift, fold so oriented) by pilot correlation at every shift,
    over the 8 orientations of the square (or ``only`` that one), in one batch of FFTs."""
    lay = _layout()
    names, stack = _d4(_whiten(fold))
    if only is not None:
        keep = names.index(only)
        names, stack = [only], stack[keep : keep + 1]
    from numpy.fft import fft2, ifft2  # numpy >= 2 keeps float32: half the work of float64

    stack = stack.astype(np.float32)
    hfilt = ifft2(fft2(stack) * lay["kernel_f32"]).real  # each fold correlated with a chip
    score = ifft2(fft2(hfilt) * lay["pilot_f32"]).real.astype(np.float64)
    norm2 = ifft2(fft2(hfilt * hfilt) * lay["ind_f32"]).real.astype(np.float64)
    z = score / np.sqrt(np.maximum(norm2, 1e-12))
    z[norm2 <= 1e-9] = 0.0
    k, i, j = np.unravel_index(int(np.argmax(z)), z.shape)
    return float(z[k, i, j]), names[k], (int(i), int(j)), stack[k]


def _polish(r: np.ndarray, m: np.ndarray, orient, z: float):
    """Coordinate ascent of the pilot's z over small changes of scale, aspect and angle: the
    template's peaks give the lattice to ~0.5%, folding many periods needs ~0.1%. Returns
    (z, m, shift, filtered fold, evaluations)."""
    best = (z, m, None, None)
    evals = 0
    for step, turn in ((0.006, 0.3), (0.003, 0.15), (0.0015, 0.07)):
        t = math.radians(turn)
        moves = [
            np.array([[1 + step, 0], [0, 1 + step]]),
            np.array([[1 - step, 0], [0, 1 - step]]),
            np.array([[1 + step, 0], [0, 1 - step]]),
            np.array([[1 - step, 0], [0, 1 + step]]),
            np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]),
            np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]]),
        ]
        for _ in range(2):
            improved = False
            for move in moves:
                cand = move @ best[1]
                zc, _, shift, hfilt = _align(_fold(r, cand), only=orient)
                evals += 1
                if zc > best[0]:
                    best, improved = (zc, cand, shift, hfilt), True
            if not improved:
                break
    return (*best, evals)


def _read(fold: np.ndarray, shift) -> np.ndarray:
    """Soft values of the data chips of an aligned fold: each read through the chip's own
    footprint (its matched filter), times its keyed sign (positive for a 1 bit). (Estimating
    the footprint from the pilot, as JPEG or resizing left it, was tried: its noise cost more
    than it gained.)"""
    lay = _layout()
    matched = np.real(np.fft.ifft2(np.fft.fft2(fold) * lay["kernel_f"]))
    r, c = np.divmod(lay["data"], CHIPS)
    vals = matched[(r * CHIP + shift[0]) % TILE, (c * CHIP + shift[1]) % TILE]
    return lay["data_sign"] * vals


def _decode_bits(chips: np.ndarray, full_list: bool = True) -> tuple[str | None, int, int, int]:
    """(payload or None, chips or bits that disagree with the hard decisions, check trials,
    format) from the data chips' soft values: format 2 first (what fakestudio writes now),
    then format 1 (labels written before it). Each codeword whose check is compared counts as
    one trial towards the false-positive bound. ``full_list`` False: format 2's Viterbi path
    only (an unmarked picture's pilot often reaches ``Z_DECODE`` somewhere; the list costs
    ~8 ms and reads almost nothing that weak)."""
    payload, nerr, trials = _decode_v2(chips, full_list)
    if payload is not None:
        return payload, nerr, trials, 2
    lay = _layout()
    soft = np.bincount(lay["data_bit"], weights=chips, minlength=lay["n_coded"])
    payload, nerr, more = _decode_v1(soft)
    return payload, nerr, trials + more, 1


def _decode_v2(chips: np.ndarray, full_list: bool = True) -> tuple[str | None, int, int]:
    """Format 2: the list Viterbi decoder (``convolutional``) proposes the ``LIST_SIZE``
    codewords that correlate best with the chips; the first whose check matches wins (the
    list's first is the Viterbi path, tried alone first: a clear mark needs no more)."""
    lay = _layout()
    soft = np.zeros(lay["coded_full"])
    soft[lay["coded_kept"]] = -chips[np.argsort(lay["data_pos"])]  # positive reads as a 0
    trials = 0
    # the Viterbi path alone first (a quarter of the work), then the rest of the list
    first = convolutional.list_viterbi(soft, MSG_BITS, 1)
    rest = []
    if full_list and first and not _check_ok(np.packbits(first[0]).tobytes()):
        rest = convolutional.list_viterbi(soft, MSG_BITS, LIST_SIZE)[1:]
    for bits in first + rest:
        trials += 1
        msg = np.packbits(bits).tobytes()
        if _check_ok(msg):
            ident = msg[: ID_BITS // 8].hex()
            wrong = message_bits(ident, 2)[lay["data_pos"]] != (chips > 0)
            return ident, int(np.sum(wrong)), trials
    return None, -1, trials


def _decode_v1(soft: np.ndarray) -> tuple[str | None, int, int]:
    """Format 1: (payload or None, bits that disagree with the hard decisions, check trials).

    First the algebraic BCH decoder on the hard decisions (it corrects up to ``BCH_T``
    errors). Then ordered-statistics decoding (OSD, Fossorier & Lin 1995), which uses how
    sure each bit is: re-encode from the ``MSG_BITS`` most reliable independent positions,
    with every single and every pair of flips among the least reliable of them, and keep the
    codewords that agree best with the soft values. Each codeword whose check is compared
    counts as one trial towards the false-positive bound (``CHECK_TRIALS`` at most)."""
    hard = (soft > 0).astype(np.uint8)
    trials = 1
    msg = _bch_hard(hard)
    if msg is not None and _check_ok(msg):
        return msg[: ID_BITS // 8].hex(), int(np.sum(_encode_bits(msg) != hard)), trials
    for cand in _osd(soft, CHECK_TRIALS - 1):
        trials += 1
        msg = np.packbits(cand[:MSG_BITS]).tobytes()
        if _check_ok(msg):
            return msg[: ID_BITS // 8].hex(), int(np.sum(cand != hard)), trials
    return None, -1, trials


def _check_ok(msg: bytes) -> bool:
    return msg[ID_BITS // 8 :] == _check(msg[: ID_BITS // 8])


def _encode_bits(msg: bytes) -> np.ndarray:
    ecc = _bch().encode(msg)
    return np.unpackbits(np.frombuffer(msg + bytes(ecc), dtype=np.uint8))[: _layout()["n_coded"]]


def _bch_hard(hard: np.ndarray) -> bytes | None:
    bch = _bch()
    nbytes = MSG_BITS // 8
    padded = np.zeros(8 * (nbytes + bch.ecc_bytes), dtype=np.uint8)
    padded[: hard.size] = hard
    raw = np.packbits(padded).tobytes()
    data, ecc = bytearray(raw[:nbytes]), bytearray(raw[nbytes:])
    if bch.decode(bytes(data), bytes(ecc)) < 0:
        return None
    bch.correct(data, ecc)
    return bytes(data)


@functools.cache
def _generator() -> np.ndarray:
    """The code's generator matrix (MSG_BITS x n_coded over GF(2)): BCH is linear, so row i
    is the codeword of the i-th unit message."""
    rows = []
    for i in range(MSG_BITS):
        unit_msg = np.zeros(MSG_BITS, dtype=np.uint8)
        unit_msg[i] = 1
        rows.append(_encode_bits(np.packbits(unit_msg).tobytes()))
    return np.array(rows, dtype=np.uint8)


def _osd(soft: np.ndarray, count: int) -> list[np.ndarray]:
    """The ``count`` codewords (0/1 arrays) that correlate best with ``soft``, from OSD of
    order 2 over the ``OSD_WINDOW`` least reliable basis positions."""
    order = np.argsort(-np.abs(soft), kind="stable")
    g = _generator()[:, order].copy()
    basis = []  # columns (in reliability order) that form the most reliable basis
    row = 0
    for col in range(g.shape[1]):
        if row == g.shape[0]:
            break
        pivots = np.flatnonzero(g[row:, col]) + row
        if pivots.size == 0:
            continue
        p = pivots[0]
        if p != row:
            g[[row, p]] = g[[p, row]]
        others = np.flatnonzero(g[:, col])
        others = others[others != row]
        g[others] ^= g[row]
        basis.append(col)
        row += 1
    hard = (soft[order] > 0).astype(np.uint8)
    info = hard[basis]  # hard decisions on the basis, whose codeword is re-encoded
    k = len(basis)
    weak = np.arange(max(0, k - OSD_WINDOW), k)
    rows = g[:k]
    base = np.bitwise_xor.reduce(rows[info.astype(bool)], axis=0) if info.any() else rows[0] * 0
    # flipping basis bit i of the message flips the codeword by generator row i: XORs only
    # (no matrix product: BLAS threads are a poor fit for a few hundred tiny rows)
    i, j = np.triu_indices(weak.size, 1)
    words = np.concatenate([base[None], base ^ rows, base ^ rows[weak[i]] ^ rows[weak[j]]], axis=0)
    score = (words.astype(np.float64) * 2.0 - 1.0) @ soft[order]
    best = np.argsort(-score, kind="stable")[:count]
    out = []
    for w in words[best]:
        cw = np.empty_like(w)
        cw[order] = w
        out.append(cw.astype(np.uint8))
    return out


def _as_input(rgb) -> np.ndarray:
    """The RGB uint8 picture the decoders read; ``ValueError`` when it cannot be one."""
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"expected an image array, got shape {a.shape}")
    a = a[..., :3]
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float64)), 0, 255).astype(np.uint8)
    if min(a.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image is {a.shape[1]}x{a.shape[0]}: too small for the durable mark")
    return a


def decode(rgb: np.ndarray) -> WatermarkResult:
    """Look for the durable mark, blind. ``found`` with ``payload`` (10 hex digits) when the
    identifier decodes with its check; ``found`` without payload when only the pilot is
    certain (``details["presence"] == "pilot"``). Never raises on odd input."""
    try:
        a = _as_input(rgb)
    except ValueError as e:
        return WatermarkResult(SCHEME, False, details={"error": str(e)})
    best_z, tried = -np.inf, []
    for n, (view, factor) in enumerate(_views(a)):
        for m, z, orient, shift, hfilt, extra in _attempts(view, a.shape, factor, n == 0):
            period = float(np.sqrt(abs(np.linalg.det(m)))) / factor
            attempt = {"period": round(period, 2), "z": round(z, 2), **extra}
            tried.append(attempt)
            best_z = max(best_z, z)
            if hfilt is None or z < Z_DECODE:
                continue  # the pilot is too weak for the data chips to carry anything
            payload, nerr, trials, fmt = _decode_bits(_read(hfilt, shift), z >= Z_LIST)
            attempt["trials"] = trials
            if payload is not None:
                return WatermarkResult(
                    SCHEME,
                    True,
                    payload=payload,
                    confidence=1.0 - false_positive_bound(),
                    details={
                        "presence": "identifier",
                        "pilot_z": round(z, 2),
                        "period_px": round(period, 2),
                        "angle_deg": round(math.degrees(math.atan2(m[1, 0], m[0, 0])), 2),
                        "mirrored": bool(orient[1]),
                        "bit_errors": nerr,
                        "format": fmt,
                        "alg": ALGS[fmt],
                        "attempts": tried,
                    },
                )
        if best_z >= Z_SEEN:
            break  # the mark was seen at this size: a smaller view would not read it better
    present = best_z >= Z_PRESENCE
    return WatermarkResult(
        SCHEME,
        present,
        payload=None,
        confidence=1.0 - false_positive_bound() if present else 0.0,
        details={
            "presence": "pilot" if present else None,
            "pilot_z": round(float(best_z), 2) if tried else None,
            "z_presence": Z_PRESENCE,
            "attempts": tried,
        },
    )


def match(rgb: np.ndarray, payload_hex: str, tries: int = 1) -> WatermarkResult:
    """Does ``rgb`` carry the durable mark of the known ``payload_hex``? (The ledger's and the
    registry's question, once a candidate record is found by other means.)

    The blind decoder's lattices, folds and pilot alignments; then, at each, the data chips
    are correlated with this payload's codeword (format 2): ``z = sum(chips * signs) /
    norm(chips)``. Knowing the payload needs far less signal than finding it among 2^72
    codewords: on wrong lattices the best codeword of the list decoder reaches z 8.5-9.5 by
    chance, so a blind read needs the true one above that, and a halved, JPEG 75 noise-like
    output read at z 7.7-8.3 for its own payload was lost to the blind decoder and found here.
    Matched when ``z >= MATCH_Z_MIN`` and the p-value below is at most ``MATCH_P_MAX``,
    unless the list decoder finds another label there (a codeword with a valid check whose
    identifier is not this payload's: ``details["other_payload"]``, never a match).

    False positives (the argued bound): for a picture without a fakestudio mark, the data
    chips' keyed signs are independent of the picture and of the alignment (chosen by the
    pilot alone), so ``z`` is a sum of independent random signs over the chips' own norm:
    by Hoeffding P(z >= t) <= exp(-t^2 / 2) for each reading. ``p_value`` is that times
    ``match_readings()`` (every lattice of both views) and ``tries`` (the (picture, payload)
    pairs the caller tests in all). For a picture that carries another label Q, z is the
    cross-correlation of the two codewords, (704 - 2 w) / sqrt(704) for a clean mark, where
    w is the weight of the codeword of P xor Q (the code is linear); its exact distribution
    over independent identifiers (a weight enumerator over the code's trellis, recomputed by
    a test) has a heavier tail than a coin's: P(z >= 5) = 2e-4 (two identifiers that share
    a long run of bits share most of their codewords: one byte apart, 6-8 on clean copies).
    A label that strong is read by the list decoder and vetoes the match; one too weak for it
    (z of Q at most 12) gives P(z >= 7) < 3e-9 per reading at Q's lattice, hence
    ``MATCH_Z_MIN`` = 7. Never raises on odd input (``found=False``, ``details["error"]``).
    """
    ident = _ident(payload_hex)
    lay = _layout()
    coded = message_bits(payload_hex, 2)[lay["data_pos"]].astype(np.float64)
    signs = 2.0 * coded - 1.0  # the chips read positive for a 1
    try:
        a = _as_input(rgb)
    except ValueError as e:
        return WatermarkResult(SCHEME, False, details={"error": str(e)})
    factor_p = max(1, tries) * match_readings()
    best: dict = {"z": -np.inf}
    for n, (view, factor) in enumerate(_views(a)):
        pilot_best = -np.inf
        for m, z_pilot, _orient, shift, hfilt, _ in _attempts(view, a.shape, factor, n == 0):
            pilot_best = max(pilot_best, z_pilot)
            if hfilt is None:
                continue
            chips = _read(hfilt, shift)
            norm = float(np.linalg.norm(chips))
            z = float(chips @ signs) / norm if norm > 0 else 0.0
            period = float(np.sqrt(abs(np.linalg.det(m)))) / factor
            if z > best["z"]:
                best = {"z": z, "pilot_z": z_pilot, "period_px": period}
            p = min(1.0, factor_p * math.exp(-0.5 * z * z)) if z > 0 else 1.0
            if z < MATCH_Z_MIN or p > MATCH_P_MAX:
                continue
            other = _other_label(chips, ident)
            details = {
                "mark": "durable",
                "z": round(z, 2),
                "z_min": MATCH_Z_MIN,
                "pilot_z": round(z_pilot, 2),
                "period_px": round(period, 2),
                "p_value": p if other is None else 1.0,
                "p_max": MATCH_P_MAX,
            }
            if other is not None:
                details["other_payload"] = other
                return WatermarkResult(SCHEME, False, confidence=0.0, details=details)
            return WatermarkResult(
                SCHEME, True, payload=payload_hex.lower(), confidence=1.0 - p, details=details
            )
        if pilot_best >= Z_SEEN:
            break  # as decode: the mark was seen at this size
    z = best["z"]
    return WatermarkResult(
        SCHEME,
        False,
        confidence=0.0,
        details={
            "mark": "durable",
            "z": round(z, 2) if np.isfinite(z) else None,
            "z_min": MATCH_Z_MIN,
            "pilot_z": round(best["pilot_z"], 2) if "pilot_z" in best else None,
            "p_value": min(1.0, factor_p * math.exp(-0.5 * z * z)) if z > 0 else 1.0,
            "p_max": MATCH_P_MAX,
        },
    )


def _other_label(chips: np.ndarray, ident: bytes) -> str | None:
    """The identifier of another label the data chips decode to (format 2's list, a valid
    check, not ``ident``), or None."""
    lay = _layout()
    soft = np.zeros(lay["coded_full"])
    soft[lay["coded_kept"]] = -chips[np.argsort(lay["data_pos"])]  # positive reads as a 0
    for bits in convolutional.list_viterbi(soft, MSG_BITS, LIST_SIZE):
        msg = np.packbits(bits).tobytes()
        if _check_ok(msg) and msg[: ID_BITS // 8] != ident:
            return msg[: ID_BITS // 8].hex()
    return None


def match_readings() -> int:
    """The most lattices ``match`` reads in one picture (every hypothesis of both views)."""
    return VIEWS * (LATTICE_TRIES + 1)


def match_copy(
    rgb: np.ndarray, payload_hex: str, size: tuple[int, int], tries: int = 2
) -> WatermarkResult:
    """``match`` on a copy resized back to the labelled picture's ``size`` (w, h), which
    undoes a squeeze the blind decoder cannot follow, then as it is (a crop, a turn): the
    first that matches, else the one that came closer (``details["copy"]``).
    ``tries`` counts both."""
    from PIL import Image

    h, w = np.shape(rgb)[:2]
    copies = {}
    if (w, h) != tuple(size) and 0 < size[0] * size[1] <= 8192**2:
        copies[f"resized to {size[0]}x{size[1]}"] = lambda: np.asarray(
            Image.fromarray(np.asarray(rgb, dtype=np.uint8)).resize(tuple(size), Image.BICUBIC)
        )
    copies["as is"] = lambda: rgb
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
            {**r.details, "copy": name},
        )
        if r.found or r.details.get("other_payload"):
            return r
        if best is None or (r.details.get("z") or -99) > (best.details.get("z") or -99):
            best = r
    return best


def _views(a: np.ndarray):
    """The bounded view, then (for a large view, which may hold an upscaled copy) the same at
    half size, where an enlarged mark is back at the frequencies it was made for. (A smaller
    view needs no second look: its autocorrelation finds periods up to ``PERIOD_MAX``.)"""
    import cv2

    view, factor = _view(a)
    yield view, factor
    h, w = view.shape[:2]
    if min(h, w) >= 2 * HALF_VIEW_MIN:
        half = cv2.resize(view, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        yield half, factor * (w // 2) / w


def _attempts(view: np.ndarray, shape, factor: float, as_labelled: bool):
    # view: the luma (float32) the decoder reads
    """Lattice hypotheses of one view, folded and aligned: (lattice, z, orientation, shift,
    filtered fold, extra details), the polished near miss last. ``as_labelled``: try the
    period the picture had when labelled (the half-size view has seen it already)."""
    y = view
    residuals: dict[float, np.ndarray] = {}

    def residual(m=None) -> np.ndarray:
        """The residual matched to a lattice's scale (half-octave steps), or the sync one."""
        s = SYNC_SCALE if m is None else float(np.sqrt(abs(np.linalg.det(m)))) / TILE
        key = 2.0 ** (round(2.0 * math.log2(min(3.0, max(0.5, s)))) / 2.0)  # half octaves
        if key not in residuals:
            residuals[key] = _residual(y, key)
        return residuals[key]

    near = None
    for m in _lattices(residual(), shape, factor, as_labelled):
        z, orient, shift, hfilt = _align(_fold(residual(m), m))
        if near is None or z > near[0]:
            near = (z, m, orient)
        yield m, z, orient, shift, hfilt, {}
    # the best near miss, polished: its scale and angle were close but not close enough
    if near is not None and POLISH_Z <= near[0]:
        z, m, shift, hfilt, evals = _polish(residual(near[1]), near[1], near[2], near[0])
        if hfilt is not None:
            yield m, z, near[2], shift, hfilt, {"polished": evals}


def decode_unless(first: WatermarkResult, rgb: np.ndarray) -> WatermarkResult:
    """``decode``, unless fakestudio's first mark was already read: a labelled output carries
    both marks with the same identifier, so the exact first mark settles it (and saves the
    search; ``details["skipped"]`` says so)."""
    if first.found and first.payload:
        return WatermarkResult(
            SCHEME,
            False,
            details={"skipped": "not searched: the first mark was read with its identifier"},
        )
    return decode(rgb)


def false_positive_bound() -> float:
    """The argued per-image false-positive bound (see the module docstring)."""
    ident = VIEWS * (LATTICE_TRIES + 1) * (LIST_SIZE + CHECK_TRIALS) * 2.0**-CHECK_BITS
    orientations_tried = VIEWS * (LATTICE_TRIES * 8 + POLISH_MAX)  # a polish keeps one
    pilot = orientations_tried * TILE * TILE * math.exp(-(Z_PRESENCE**2) / 2.0)
    return ident + pilot
