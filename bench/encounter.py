"""Time per encounter image (regional, one batched UNet call per step) vs a plain
single-prompt generation of the same size and steps, measured in the same run.

Also times the unbatched reference (three separate per-region passes per step), to show
what batching buys on this device. Target (issue 5): encounter / plain under 2x.

    .venv/bin/python bench/encounter.py [--base tiny] [--steps 20] [--size 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="tiny")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    os.environ.setdefault("FAKESTUDIO_HOME", tempfile.mkdtemp(prefix="fs-bench-"))

    import torch

    from fakestudio.encounter import BASE, Person, load_people, region_masks, regional_render
    from fakestudio.generate import render
    from fakestudio.models import load_base
    from fakestudio.record import GenerationRecord
    from tests.builders import make_lora

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    base = load_base(args.base, device=device)
    pipe = base.pipe
    tmp = Path(tempfile.mkdtemp())
    loras = [make_lora(pipe, tmp / f"p{i}.safetensors", seed=i) for i in range(2)]
    load_people(pipe, [Person(p) for p in loras])
    masks = region_masks("left-right", args.size, args.size, 0.04)
    prompts = ["a scene", "photo of aaa1 man, a scene", "photo of bbb2 woman, a scene"]
    adapters = [BASE, "lora0", "lora1"]

    def rec(seed):
        return GenerationRecord(
            prompt="photo of aaa1 man, a scene",
            negative_prompt="",
            seed=seed,
            steps=args.steps,
            guidance=7.0,
            width=args.size,
            height=args.size,
            scheduler="euler",
            base_model=base.name,
            base_sha256=base.sha256,
        )

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def plain(seed):
        pipe.set_adapters(["lora0"])
        render(pipe, rec(seed))

    def regional(seed, batched=True):
        regional_render(pipe, rec(seed), prompts, adapters, masks, batched=batched)

    runs = {"plain": [], "encounter (batched)": [], "per-region passes": []}
    for i in range(args.repeat + 1):  # first round warms up
        for name, fn in (
            ("plain", plain),
            ("encounter (batched)", regional),
            ("per-region passes", lambda s: regional(s, batched=False)),
        ):
            sync()
            t = time.perf_counter()
            fn(i)
            sync()
            if i:
                runs[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(
        f"device {device}, base {base.name}, {args.size}px, {args.steps} steps, median of {args.repeat}"
    )
    for k, v in med.items():
        print(f"  {k:22s}: {v:7.3f} s/image  ({v / med['plain']:.2f}x plain)")
    print(
        f"encounter / plain ratio: {med['encounter (batched)'] / med['plain']:.2f}x (target < 2x)"
    )


if __name__ == "__main__":
    main()
