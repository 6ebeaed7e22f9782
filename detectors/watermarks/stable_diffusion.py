"""Detectors for the Stable Diffusion reference watermarks (invisible-watermark ``dwtDct``).

* SD v1 (CompVis ``scripts/txt2img.py``, also AUTOMATIC1111 and others): the bytes
  ``b"StableDiffusionV1"`` (136 bits), embedded with ``dwtDct`` on a uint8 **BGR** array
  (``cv2.cvtColor(rgb, COLOR_RGB2BGR)`` first), so U = 0.492 (B - Y) + 128.
* SDXL (Stability ``generative-models`` and diffusers' ``StableDiffusionXLWatermarker``): the
  48 bits ``0b101100111110110010010000011110111011000110011110`` embedded with ``dwtDct`` on a
  **float32** array in 0..255, where cv2's U offset is 0.5, not 128 (measured: decoding with 128
  drops clean marks to 0.4-0.9 accuracy). generative-models and current diffusers flip RGB to
  BGR first; older diffusers passed the RGB array as if it were BGR, which puts the mark in
  0.492 (R - Y') with Y' = 0.299 B + 0.587 G + 0.114 R. Both orders are tried, the better wins.

Decision: ``found`` when the bit accuracy against the known message reaches the threshold.
Measured (soft decoding) on the fixture photos and generated images (full size, 512 px crops,
0.5 / 0.75 resizes), random noise, flat colours, a gradient and stripes: at most 0.59 (SD v1)
and 0.67 (SDXL, either order); 8 other photos at 512 px read up to 0.72 (measured with
invisible-watermark 0.2.0 when these decoders were written). Marked images
(imwatermark, as the SD scripts / diffusers call it, PNG): SD v1 0.95-1.00, SDXL 1.00 on most
images, 0.90-0.98 on some, and ~0.56 where the scheme itself fails (chroma so smooth that the
quantised coefficient stops being the block maximum; imwatermark's own decoder fails there
too). The dwtDct marks do not survive JPEG (<= 0.87 after quality 95 in most cases).

* ``SD_V1_THRESHOLD = 0.85`` (>= 116 of 136 bits): a random pattern reaches it with
  probability ~1e-17; 0.26 above the best unmarked image measured here.
* ``SDXL_THRESHOLD = 0.875`` (>= 42 of 48 bits): ~5e-8 per channel order for a random pattern
  (1e-7 for both); 0.2 above the best unmarked image.

``confidence`` maps accuracy piecewise linearly: <= 0.72 (unmarked ceiling) -> 0, the threshold
-> 0.5, 1.0 -> 1.0.
"""

from __future__ import annotations

import numpy as np

from .dwt import DEFAULT_SCALE, bits_from_scores, soft_decode_dwt_dct
from .result import WatermarkResult

__all__ = [
    "SDXL_BITS",
    "SDXL_MESSAGE",
    "SDXL_THRESHOLD",
    "SD_V1_BITS",
    "SD_V1_MESSAGE",
    "SD_V1_THRESHOLD",
    "detect_sd_v1",
    "detect_sdxl",
]

SD_V1_MESSAGE = b"StableDiffusionV1"
SD_V1_BITS = np.unpackbits(np.frombuffer(SD_V1_MESSAGE, dtype=np.uint8))
SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110
SDXL_BITS = np.array([int(c) for c in bin(SDXL_MESSAGE)[2:]], dtype=np.uint8)

SD_V1_THRESHOLD = 0.85
SDXL_THRESHOLD = 0.875
#: Highest mean bit accuracy measured on unmarked photos (8 at 512 px); confidence 0 below it.
UNMARKED_CEILING = 0.72


def _confidence(acc: float, threshold: float) -> float:
    if acc <= UNMARKED_CEILING:
        return 0.0
    if acc < threshold:
        return 0.5 * (acc - UNMARKED_CEILING) / (threshold - UNMARKED_CEILING)
    return min(1.0, 0.5 + 0.5 * (acc - threshold) / (1.0 - threshold))


def _score(rgb, bits: np.ndarray, swap_rb: bool, u_offset: float) -> tuple[float, float]:
    scores = soft_decode_dwt_dct(rgb, bits.size, DEFAULT_SCALE, swap_rb=swap_rb, u_offset=u_offset)
    acc = float(np.mean(bits_from_scores(scores) == bits))
    margin = float(np.mean(np.abs(2.0 * scores - 1.0)))
    return acc, margin


def make_result(scheme, message_hex, threshold, acc, margin, details) -> WatermarkResult:
    found = acc >= threshold
    return WatermarkResult(
        scheme,
        found,
        payload=message_hex if found else None,
        confidence=_confidence(acc, threshold),
        bit_accuracy=acc,
        margin=margin,
        details={"threshold": threshold, **details},
    )


def detect_sd_v1(rgb: np.ndarray) -> WatermarkResult:
    """Stable Diffusion v1 reference mark (``b"StableDiffusionV1"``, dwtDct, BGR, uint8).

    ``payload`` is the message as hex when found. Never raises: unusable input gives
    ``found=False`` with ``details["error"]``.
    """
    try:
        acc, margin = _score(rgb, SD_V1_BITS, swap_rb=False, u_offset=128.0)
    except ValueError as e:
        return WatermarkResult("sd-v1", False, details={"error": str(e)})
    return make_result("sd-v1", SD_V1_MESSAGE.hex(), SD_V1_THRESHOLD, acc, margin, {"nbits": 136})


def detect_sdxl(rgb: np.ndarray) -> WatermarkResult:
    """SDXL mark (48 fixed bits, dwtDct on float32 input), both channel orders.

    ``details["channel_order"]`` says which order matched better: ``"bgr"`` (generative-models,
    current diffusers) or ``"rgb-as-bgr"`` (older diffusers). Never raises.
    """
    try:
        bgr = _score(rgb, SDXL_BITS, swap_rb=False, u_offset=0.5)
        rgb_as_bgr = _score(rgb, SDXL_BITS, swap_rb=True, u_offset=0.5)
    except ValueError as e:
        return WatermarkResult("sdxl", False, details={"error": str(e)})
    order, (acc, margin) = max(
        (("bgr", bgr), ("rgb-as-bgr", rgb_as_bgr)), key=lambda t: (t[1][0], t[1][1])
    )
    details = {
        "nbits": 48,
        "channel_order": order,
        "accuracy_bgr": bgr[0],
        "accuracy_rgb_as_bgr": rgb_as_bgr[0],
    }
    return make_result("sdxl", f"{SDXL_MESSAGE:012x}", SDXL_THRESHOLD, acc, margin, details)
