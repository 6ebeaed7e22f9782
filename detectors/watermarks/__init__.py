"""Invisible watermarks: fakestudio's own mark and the Stable Diffusion reference marks.

Pure numpy (no cv2, torch, PyWavelets or imwatermark at import or run time). Inputs are RGB
arrays (H, W, 3), uint8 or 0..255 floats; images under 256x256 pixels cannot carry these
marks: embedding raises ``ValueError``, decoding returns ``found=False`` with
``details["error"]``.

    from detectors.watermarks import detect_all, ours
    marked = ours.embed(rgb, ours.payload_from_fingerprint(sha256_digest))
    for r in detect_all(marked): print(r.scheme, r.found, r.payload, r.confidence)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class WatermarkResult:
    """What one watermark detector says about one image.

    ``scheme``: detector name (``fakestudio``, ``sd-v1``, ``sdxl``). ``found``: the decision.
    ``payload``: decoded payload as hex (ours: the 10-hex-digit identifier; SD/SDXL: their fixed
    message) when found, else None. ``confidence``: 0..1, see each detector. ``bit_accuracy``:
    agreement with the expected bits (known-message schemes only). ``margin``: mean per-bit
    decision margin ``|2 * score - 1|`` (0 = no signal, 1 = every block agrees). ``details``:
    detector-specific extras (thresholds, channel order, decode scale, errors).
    """

    scheme: str
    found: bool
    payload: str | None = None
    confidence: float = 0.0
    bit_accuracy: float | None = None
    margin: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


from . import durable, ours, stable_diffusion  # noqa: E402  (they import WatermarkResult from here)
from .dwt import (  # noqa: E402
    MIN_PIXELS,
    check_size,
    embed_dwt_dct,
    embed_dwt_dct_svd,
    psnr,
    soft_decode_dwt_dct,
    soft_decode_dwt_dct_svd,
)
from .stable_diffusion import detect_sd_v1, detect_sdxl  # noqa: E402


def detect_all(rgb: np.ndarray) -> list[WatermarkResult]:
    """Run every detector: fakestudio's mark, the SD v1 reference mark, the SDXL mark, and
    fakestudio's durable mark (``durable``: survives crops, resizes, rotation and flips).

    Never raises for small or odd images (each result then says why in ``details["error"]``).
    About 15 ms for a 512x512 image without any mark (the fakestudio decoder also tries the
    half-size grid), less when ours is found at full size.
    """
    first = ours.decode(rgb)
    return [first, detect_sd_v1(rgb), detect_sdxl(rgb), durable.decode_unless(first, rgb)]


__all__ = [
    "MIN_PIXELS",
    "WatermarkResult",
    "check_size",
    "detect_all",
    "detect_sd_v1",
    "detect_sdxl",
    "durable",
    "embed_dwt_dct",
    "embed_dwt_dct_svd",
    "ours",
    "psnr",
    "soft_decode_dwt_dct",
    "soft_decode_dwt_dct_svd",
    "stable_diffusion",
]
