"""What a watermark detector says about one image (shared by every codec module)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
