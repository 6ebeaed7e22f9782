"""detectors/filters.py gives what scipy.ndimage gives, so verify needs no SciPy."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.filters import gaussian, maximum

ndimage = pytest.importorskip("scipy.ndimage")


@pytest.mark.parametrize("shape", [(3, 4), (31, 17), (128, 96)])
@pytest.mark.parametrize("mode", ["reflect", "nearest", "wrap"])
def test_gaussian_and_maximum_are_scipy_s(shape, mode):
    rng = np.random.default_rng(sum(shape))
    a = rng.normal(size=shape)
    for sigma, truncate in ((0.6, 4.0), (1.5, 3.5), (2.0, 4.0), (4.0, 4.0)):
        ref = ndimage.gaussian_filter(a, sigma, mode=mode, truncate=truncate)
        assert np.abs(gaussian(a, sigma, mode=mode, truncate=truncate) - ref).max() < 1e-12
    for size in (1, 3, 5):
        assert np.array_equal(
            maximum(a, size, mode=mode), ndimage.maximum_filter(a, size, mode=mode)
        )


def test_an_even_maximum_window_is_refused():
    with pytest.raises(ValueError, match="odd"):
        maximum(np.zeros((4, 4)), 4)
