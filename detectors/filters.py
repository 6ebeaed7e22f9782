"""Gaussian and maximum filters with SciPy's ndimage semantics, computed by OpenCV.

`detectors` needs two image filters, and SciPy would cost a verify more than it does: 143 MB
of the core install and ~0.3 s of every cold start (importing `scipy.fft` and `scipy.ndimage`
on this machine), where the rest of a verify takes ~0.5 s. These give what
`scipy.ndimage.gaussian_filter` and `maximum_filter` give for the modes used here (equal to
1e-12; the maximum exactly; tests/test_filters.py compares them with SciPy): the border is
padded as SciPy extends it, then OpenCV filters the inside.
"""

from __future__ import annotations

import numpy as np

# scipy.ndimage's mode -> numpy.pad's name for the same extension
_PAD = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap"}


def gaussian(a: np.ndarray, sigma: float, *, mode: str = "reflect", truncate: float = 4.0):
    """`scipy.ndimage.gaussian_filter(a, sigma, mode=mode, truncate=truncate)` of a 2-D
    array (float64 out): the same sampled, normalised kernel, `int(truncate * sigma + 0.5)`
    pixels each side."""
    import cv2

    a = np.asarray(a, dtype=np.float64)
    r = int(truncate * float(sigma) + 0.5)
    if r < 1:
        return a.copy()
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / float(sigma)) ** 2)
    k /= k.sum()
    padded = np.pad(a, r, mode=_PAD[mode])
    out = cv2.sepFilter2D(padded, cv2.CV_64F, k, k, borderType=cv2.BORDER_CONSTANT)
    return out[r:-r, r:-r]


def maximum(a: np.ndarray, size: int, *, mode: str = "reflect") -> np.ndarray:
    """`scipy.ndimage.maximum_filter(a, size=size, mode=mode)` of a 2-D array, for an odd
    `size` (the window centred on each pixel)."""
    import cv2

    if size % 2 != 1:
        raise ValueError(f"maximum: an odd window size, not {size}")
    a = np.asarray(a)
    r = size // 2
    if r == 0:
        return a.copy()
    padded = np.pad(a.astype(np.float64), r, mode=_PAD[mode])
    out = cv2.dilate(padded, np.ones((size, size), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return out[r:-r, r:-r].astype(a.dtype, copy=False)
