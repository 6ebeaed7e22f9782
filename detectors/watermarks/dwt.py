"""Vectorised re-implementation of invisible-watermark 0.2.0's ``dwtDct`` and ``dwtDctSvd``.

Bit-compatible in layout with ``imwatermark`` (marks embedded by it decode here and marks
embedded here decode with it), but written with numpy only: no cv2, no PyWavelets import (it
costs ~100 ms), no per-block Python loop, no uint8 truncation half way through.

What imwatermark 0.2.0 actually does (read from ``maxDct.py`` / ``dwtDctSvd.py``):

* ``cv2.cvtColor(bgr, COLOR_BGR2YUV)``; Y = 0.299 R + 0.587 G + 0.114 B,
  U = 0.492 (B - Y) + d, V = 0.877 (R - Y) + d, where d = 128 for uint8 input and 0.5 for
  float input (diffusers passes float32 arrays in 0..255, so SDXL marks live at d = 0.5).
* ``for channel in range(2)``: only Y and U are visited, so the third entry of ``scales`` is never
  used; with the defaults (dwtDct ``[0, 36, 36]``, dwtDctSvd ``[0, 36, 0]``) both algorithms
  embed in the U channel only, with step 36.
* A one-level haar DWT of ``U[:H//4*4, :W//4*4]``; only the LL band matters (imwatermark also
  swaps the H and V detail bands on reconstruction, a bug that damages the image but carries no
  information; it is not reproduced here).
* The LL band is cut into 4x4 blocks in row-major order (``LLh//4`` rows of ``LLw//4`` blocks;
  leftover rows/columns untouched); block number ``k`` carries bit ``k % nbits``.
* ``dwtDctSvd``: s0 = largest singular value of ``cv2.dct(block)``. The 4x4 DCT-II of cv2 is
  orthonormal, so it does not change singular values and the singular vectors only rotate:
  the DCT is therefore skipped here (s0 and the rank-one update ``u0 v0^T`` are identical).
  Embed: ``s0 <- (floor(s0/36) + 0.25 + 0.5 bit) * 36``; decode: ``(s0 % 36) > 18``.
* ``dwtDct`` (``maxDct.py``; despite the name no DCT is applied): take the coefficient of largest
  magnitude among flat positions 1..15 of the raw LL block (first on ties), quantise its
  magnitude the same way, keep its sign.
* The new LL band goes back through the inverse DWT and is written into the uint8 YUV array
  (truncation, not rounding), then ``COLOR_YUV2BGR`` rounds again.
* Decode: per bit the mean of the 0/1 block votes; bit = mean * 255 > 127.

Here the colour conversion is done in float (U is a linear function of RGB, so the LL band is
computed from 2x2 channel sums), only the U channel is changed and the result is rounded once.
Keeping Y and V exactly fixes the direction dR = 0, dB = dU / 0.492, dG = -0.114 / 0.587 * dB;
where B would leave 0..255 the shortfall is taken by R and G instead (same gain in B - Y, a
small luma change), so bright and saturated areas still carry the mark. Inverse haar of an
LL-only change adds dLL / 2 to each of the 2x2 pixels, so no wavelet library is needed.
Measured against imwatermark on 10 images at 512 px: both directions decode 64/64 bits for
dwtDctSvd; PSNR ~42 dB here against 32-45 dB for imwatermark (whose H/V swap costs the most).
All functions take RGB arrays (H, W, 3); ``swap_rb=True`` models a caller that handed an RGB
array to imwatermark as if it were BGR.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "BLOCK",
    "DEFAULT_SCALE",
    "MIN_PIXELS",
    "as_rgb",
    "bits_from_scores",
    "check_size",
    "embed_dwt_dct",
    "embed_dwt_dct_svd",
    "ll_band",
    "max_coefficient",
    "mean_per_bit",
    "psnr",
    "soft_decode_dwt_dct",
    "soft_decode_dwt_dct_svd",
    "to_blocks",
    "top_singular",
    "u_weights",
    "votes",
]

BLOCK = 4
DEFAULT_SCALE = 36.0
#: imwatermark refuses ``rows * cols < 256 * 256``; so do we.
MIN_PIXELS = 256 * 256

# U = 0.492 * (B - Y) as weights on (R, G, B).
_KR, _KG, _KB = 0.299, 0.587, 0.114
_KU = 0.492
_U_WEIGHTS = np.array([-_KU * _KR, -_KU * _KG, _KU * (1.0 - _KB)])
# RGB change that moves U by +1 while keeping Y and V fixed.
_DB_PER_DU = 1.0 / _KU
_DG_PER_DU = -(_KB / _KG) / _KU

_POWER_ITERS = 2
_RESIDUAL_TOL = 1e-3


def check_size(shape: Sequence[int]) -> None:
    """Raise ``ValueError`` for images imwatermark would refuse (fewer than 256*256 pixels)."""
    rows, cols = int(shape[0]), int(shape[1])
    if rows * cols < MIN_PIXELS or rows < 8 or cols < 8:
        raise ValueError(
            f"image too small for a DWT watermark: {cols}x{rows} pixels, "
            f"need at least 256x256 ({MIN_PIXELS} pixels)"
        )


def as_rgb(img: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 3) or (H, W, 4) array -> (H, W, 3) view; checks the size."""
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image array (H, W, 3), got shape {a.shape}")
    check_size(a.shape)
    return a[:, :, :3]


def _bits_array(bits) -> np.ndarray:
    b = np.asarray(list(bits) if not isinstance(bits, np.ndarray) else bits).astype(np.int64)
    if b.ndim != 1 or b.size == 0:
        raise ValueError("bits must be a non-empty 1-D sequence of 0/1")
    return (b % 2).astype(np.float64)


def u_weights(swap_rb: bool) -> np.ndarray:
    return _U_WEIGHTS[::-1] if swap_rb else _U_WEIGHTS


def ll_band(rgb: np.ndarray, swap_rb: bool, u_offset: float, upscale: int = 1) -> np.ndarray:
    """Haar LL band of imwatermark's U channel, shape (H//4*2, W//4*2).

    ``upscale=2`` returns the LL band of the image nearest-neighbour upsampled by 2 (which is
    ``2 * U``): decoding a copy that was downscaled by 0.5 on the original block grid.
    """
    w = u_weights(swap_rb)
    if upscale == 1:
        rows, cols = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
        a = rgb[:rows, :cols]
        if a.dtype == np.uint8:
            a = a.astype(np.uint16)
        else:
            a = a.astype(np.float64)
        h = a[0::2] + a[1::2]
        s = h[:, 0::2] + h[:, 1::2]
        ll = s[:, :, 0] * (0.5 * w[0])
        ll += s[:, :, 1] * (0.5 * w[1])
        ll += s[:, :, 2] * (0.5 * w[2])
        ll += 2.0 * u_offset
        return ll
    if upscale == 2:
        rows, cols = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
        a = rgb[:rows, :cols]
        ll = a[:, :, 0] * (2.0 * w[0])
        ll += a[:, :, 1] * (2.0 * w[1])
        ll += a[:, :, 2] * (2.0 * w[2])
        ll += 2.0 * u_offset
        return ll
    raise ValueError("upscale must be 1 or 2")


def to_blocks(ll: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Cut the LL band into 4x4 blocks, laid out (4, 4, n) with n in imwatermark's row-major
    block order (block-last keeps the batched arithmetic on contiguous rows)."""
    nbr, nbc = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    blocks = np.ascontiguousarray(
        ll[: nbr * BLOCK, : nbc * BLOCK].reshape(nbr, BLOCK, nbc, BLOCK).transpose(1, 3, 0, 2)
    ).reshape(BLOCK, BLOCK, nbr * nbc)
    return blocks, nbr, nbc


def _from_blocks(blocks: np.ndarray, nbr: int, nbc: int) -> np.ndarray:
    return blocks.reshape(BLOCK, BLOCK, nbr, nbc).transpose(2, 0, 3, 1).reshape(nbr * BLOCK, -1)


def _norm(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("in,in->n", x, x))


def top_singular(blocks: np.ndarray, vectors: bool):
    """Largest singular value (and its singular vectors) of each 4x4 block (layout (4, 4, n)).

    Power iteration from the all-ones direction: LL blocks of a U channel carry a large offset
    (2 * 128 per coefficient), so they are close to rank one and two iterations reach ~1e-5
    absolute accuracy on s0 (the decision needs ~0.1); blocks whose residual says otherwise
    (relative residual > 1e-3, or s0 ~ 0) are redone with ``np.linalg.svd``. Batched
    ``np.linalg.svd`` alone costs ~13 ms for the 4096 blocks of a 512 px image, this ~1 ms.
    Returns ``s0`` (n,) or ``(s0, u0, v0)`` with vectors laid out (4, n).
    """
    n = blocks.shape[2]
    v = np.full((BLOCK, n), 0.5)
    u = v
    s = np.ones(n)
    for _ in range(_POWER_ITERS):
        u = np.einsum("ijn,jn->in", blocks, v)
        u /= np.maximum(_norm(u), 1e-300)
        v = np.einsum("jin,jn->in", blocks, u)
        s = _norm(v)
        v /= np.maximum(s, 1e-300)
    bv = np.einsum("ijn,jn->in", blocks, v)
    r = bv - s * u
    bad = ~(np.einsum("in,in->n", r, r) <= (_RESIDUAL_TOL * s) ** 2) | (s < 1e-6)
    s = _norm(bv)
    if vectors:
        u = bv / np.maximum(s, 1e-300)
    if bad.any():
        sub = blocks[:, :, bad].transpose(2, 0, 1)
        if vectors:
            uu, ss, vt = np.linalg.svd(sub)
            s[bad], u[:, bad], v[:, bad] = ss[:, 0], uu[:, :, 0].T, vt[:, 0, :].T
        else:
            s[bad] = np.linalg.svd(sub, compute_uv=False)[:, 0]
    if vectors:
        return s, u, v
    return s


def _quantise(mag: np.ndarray, bitseq: np.ndarray, scale: float) -> np.ndarray:
    return (np.floor(mag / scale) + 0.25 + 0.5 * bitseq) * scale


def votes(mag: np.ndarray, scale: float, soft: bool) -> np.ndarray:
    """Per-block score in [0, 1]: 0 at the bit-0 point (phase 1/4), 1 at the bit-1 point (3/4).

    ``soft=False`` is imwatermark's hard vote ``(mag % scale) > scale / 2``. ``soft=True`` gives
    the same decision per block but weights it by how close the value sits to a quantisation
    point (``0.5 - 0.5 sin(2 pi phase)``): blocks that no longer carry the mark (phase spread
    uniformly) then add less noise to the per-bit mean. Measured on 10 images at 512 px, mean /
    worst bit accuracy, hard vs soft: dwtDctSvd after JPEG 50 0.964 / 0.875 vs 0.975 / 0.922;
    SD v1 marks (dwtDct, 136 bits) embedded by imwatermark, PNG: 0.975 / 0.735 vs 0.996 / 0.949.
    """
    if not soft:
        return (np.mod(mag, scale) > 0.5 * scale).astype(np.float64)
    phase = np.mod(mag, scale) * (2.0 * np.pi / scale)
    return 0.5 - 0.5 * np.sin(phase)


def mean_per_bit(votes: np.ndarray, nbits: int) -> np.ndarray:
    n = votes.shape[0]
    if n < nbits:
        raise ValueError(f"image too small for {nbits} bits: only {n} blocks")
    idx = np.arange(n) % nbits
    sums = np.bincount(idx, weights=votes, minlength=nbits)
    counts = np.bincount(idx, minlength=nbits)
    return sums / counts


def _round_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _apply_ll_delta(
    rgb: np.ndarray, dll_blocks: np.ndarray, nbr: int, nbc: int, swap_rb: bool
) -> np.ndarray:
    """Add an LL-band change to the U channel only, rounding once to uint8."""
    dll = _from_blocks(dll_blocks, nbr, nbc)  # (nbr*4, nbc*4) LL coefficients
    r2, c2 = dll.shape
    rows, cols = 2 * r2, 2 * c2
    bi, ri = (0, 2) if swap_rb else (2, 0)

    def plane(c: int) -> np.ndarray:  # (r2, 2, c2, 2) view: the 2x2 pixels of each LL coefficient
        return rgb[:rows, :cols, c].reshape(r2, 2, c2, 2)

    # inverse haar of an LL-only change: each of the 2x2 pixels gets dU = dLL / 2
    du = dll[:, None, :, None]
    blue = (plane(bi) + du * (0.5 * _DB_PER_DU)).reshape(rows, cols)
    green = (plane(1) + du * (0.5 * _DG_PER_DU)).reshape(rows, cols)
    out = np.array(rgb, copy=True)
    clipped = np.flatnonzero((blue > 255.0) | (blue < 0.0))
    if clipped.size:
        # Where B saturates (white, black, saturated blue) make up the lost part of dU by
        # moving R and G the other way: B - Y gains 0.886 x whether B rises by x or R and G
        # fall by x. A small luma change instead of a lost bit.
        b = blue.ravel()[clipped]
        lost = b - np.clip(b, 0.0, 255.0)
        blue.ravel()[clipped] = b - lost
        green.ravel()[clipped] -= lost
        red = out[:rows, :cols, ri].astype(np.float64)
        red.ravel()[clipped] -= lost
        out[:rows, :cols, ri] = _round_u8(red)
    out[:rows, :cols, bi] = _round_u8(blue)
    out[:rows, :cols, 1] = _round_u8(green)
    return out


def _check_embed_input(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 array (H, W, 3), got {a.dtype} {a.shape}")
    check_size(a.shape)
    return a


def embed_dwt_dct_svd(
    rgb: np.ndarray,
    bits,
    scale: float = DEFAULT_SCALE,
    *,
    swap_rb: bool = False,
    u_offset: float = 128.0,
) -> np.ndarray:
    """Embed ``bits`` with imwatermark's ``dwtDctSvd`` (U channel, step ``scale``).

    ``rgb``: uint8 (H, W, 3). Returns a new uint8 array; deterministic.
    """
    a = _check_embed_input(rgb)
    b = _bits_array(bits)
    ll = ll_band(a, swap_rb, u_offset)
    blocks, nbr, nbc = to_blocks(ll)
    s0, u0, v0 = top_singular(blocks, vectors=True)
    bitseq = b[np.arange(blocks.shape[2]) % b.size]
    delta = _quantise(s0, bitseq, scale) - s0
    dblocks = u0[:, None, :] * v0[None, :, :] * delta
    return _apply_ll_delta(a, dblocks, nbr, nbc, swap_rb)


def soft_decode_dwt_dct_svd(
    rgb: np.ndarray,
    nbits: int,
    scale: float = DEFAULT_SCALE,
    *,
    swap_rb: bool = False,
    u_offset: float = 128.0,
    upscale: int = 1,
    soft: bool = True,
) -> np.ndarray:
    """Per-bit mean block score (0..1, > 0.5 means 1) of a ``dwtDctSvd`` mark of ``nbits`` bits.

    ``upscale=2`` reads a copy that was downscaled by 0.5 on the original's block grid.
    ``soft=False`` reproduces imwatermark's 0/1 votes (see ``votes``).
    """
    a = as_rgb(rgb)
    blocks, _, _ = to_blocks(ll_band(a, swap_rb, u_offset, upscale))
    s0 = top_singular(blocks, vectors=False)
    return mean_per_bit(votes(s0, scale, soft), int(nbits))


def max_coefficient(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat position (1..15, first on ties) and value of each block's largest |coefficient|,
    position 0 excluded, as imwatermark's ``diffuse_dct_matrix``."""
    flat = blocks.reshape(BLOCK * BLOCK, -1)
    pos = np.argmax(np.abs(flat[1:]), axis=0) + 1
    return pos, flat[pos, np.arange(flat.shape[1])]


def embed_dwt_dct(
    rgb: np.ndarray,
    bits,
    scale: float = DEFAULT_SCALE,
    *,
    swap_rb: bool = False,
    u_offset: float = 128.0,
) -> np.ndarray:
    """Embed ``bits`` with imwatermark's ``dwtDct`` (U channel, step ``scale``).

    ``rgb``: uint8 (H, W, 3). Returns a new uint8 array; deterministic.
    """
    a = _check_embed_input(rgb)
    b = _bits_array(bits)
    ll = ll_band(a, swap_rb, u_offset)
    blocks, nbr, nbc = to_blocks(ll)
    n = blocks.shape[2]
    pos, val = max_coefficient(blocks)
    bitseq = b[np.arange(n) % b.size]
    sign = np.where(val >= 0, 1.0, -1.0)
    new = sign * _quantise(np.abs(val), bitseq, scale)
    dblocks = np.zeros((BLOCK * BLOCK, n))
    dblocks[pos, np.arange(n)] = new - val
    return _apply_ll_delta(a, dblocks.reshape(BLOCK, BLOCK, n), nbr, nbc, swap_rb)


def soft_decode_dwt_dct(
    rgb: np.ndarray,
    nbits: int,
    scale: float = DEFAULT_SCALE,
    *,
    swap_rb: bool = False,
    u_offset: float = 128.0,
    upscale: int = 1,
    soft: bool = True,
) -> np.ndarray:
    """Per-bit mean block score (0..1, > 0.5 means 1) of a ``dwtDct`` mark of ``nbits`` bits.

    Same options as :func:`soft_decode_dwt_dct_svd`.
    """
    a = as_rgb(rgb)
    blocks, _, _ = to_blocks(ll_band(a, swap_rb, u_offset, upscale))
    _, val = max_coefficient(blocks)
    return mean_per_bit(votes(np.abs(val), scale, soft), int(nbits))


def bits_from_scores(scores: np.ndarray) -> np.ndarray:
    """imwatermark's decision: ``mean * 255 > 127``. Returns uint8 0/1."""
    return (np.asarray(scores) * 255 > 127).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (inf when identical)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
