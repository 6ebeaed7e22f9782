"""The generation record: everything that determines an output's pixels, plus who made it.

It feeds the watermark payload, the C2PA manifest, the Automatic1111 `parameters` text and
the ledger. The payload is derived from the settings only (never the time), so the same seed
and settings reproduce the same pixels, watermark included.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from fakestudio import __version__

GENERATOR_NAME = "fakestudio"


@dataclass(frozen=True)
class LoraRef:
    name: str  # file name only, never a path
    sha256: str
    weight: float
    trigger: str | None = None
    a1111_hash: str | None = None  # what Automatic1111 hashes: the tensor data, not the file


@dataclass
class GenerationRecord:
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    scheduler: str
    base_model: str  # a name ("tiny", folder or file name), never an absolute path
    base_sha256: str
    loras: list[LoraRef] = field(default_factory=list)
    record_prompt: bool = False
    # how the picture was composed beyond one prompt, e.g. {"mode": "encounter", "layout": ...};
    # part of the settings (so of the watermark payload) and of the manifest
    composition: dict | None = None
    software: str = f"{GENERATOR_NAME} {__version__}"
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def settings(self) -> dict:
        """Everything that determines the pixels (no time)."""
        d = asdict(self)
        d.pop("created")
        d.pop("record_prompt")
        return d

    def fingerprint(self) -> bytes:
        """sha256 of the canonical settings: stable for identical settings."""
        blob = json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).digest()

    def public(self) -> dict:
        """What may leave the machine: the prompt only when the user allowed it."""
        d = asdict(self)
        if not self.record_prompt:
            d["prompt"] = None
            d["negative_prompt"] = None
        return d

    def a1111_parameters(self) -> str:
        """Automatic1111's `parameters` text; the prompt line is omitted unless recorded."""
        lines = []
        if self.record_prompt:
            prompt = self.prompt + "".join(
                f" <lora:{_stem(x.name)}:{x.weight:g}>" for x in self.loras
            )
            lines.append(prompt)
            if self.negative_prompt:
                lines.append(f"Negative prompt: {self.negative_prompt}")
        opts = [
            f"Steps: {self.steps}",
            f"Sampler: {self.scheduler}",
            f"CFG scale: {self.guidance:g}",
            f"Seed: {self.seed}",
            f"Size: {self.width}x{self.height}",
            f"Model hash: {self.base_sha256[:10]}",
            f"Model: {self.base_model}",
        ]
        if self.loras:
            hashes = ", ".join(
                f"{_stem(x.name)}: {(x.a1111_hash or x.sha256)[:12]}" for x in self.loras
            )
            opts.append(f'Lora hashes: "{hashes}"')
        opts.append(f"Version: {self.software}")
        lines.append(", ".join(opts))
        return "\n".join(lines)


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]
