"""Time per encounter image (regional composition, default tiles) vs a plain single-prompt
generation (one LoRA) of the same size and steps, measured in the same run.

Also times `--context full` (every region on the whole picture, one batched call of six
samples per step) and the unbatched reference (three separate whole-picture passes per
step), to show what tiling and batching each buy on this device.
Target (issue 5): encounter / plain under 2x.

    .venv/bin/python bench/encounter.py [--base tiny] [--steps 20] [--size 256 512] [--repeat 3]
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
    ap.add_argument("--size", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    os.environ.setdefault("FAKESTUDIO_HOME", tempfile.mkdtemp(prefix="fs-bench-"))

    import torch

    from fakestudio.encounter import BASE, Person, load_people
    from fakestudio.models import load_base
    from tests.builders import make_lora

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    base = load_base(args.base, device=device)
    pipe = base.pipe
    tmp = Path(tempfile.mkdtemp())
    loras = [make_lora(pipe, tmp / f"p{i}.safetensors", seed=i) for i in range(2)]
    load_people(pipe, [Person(p) for p in loras])
    prompts = ["a scene", "photo of aaa1 man, a scene", "photo of bbb2 woman, a scene"]
    adapters = [BASE, "lora0", "lora1"]
    factor = 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    print(f"device {device}, base {base.name}, {args.steps} steps, median of {args.repeat}")
    ratios = {}
    for size in args.size:
        ratios[size] = bench_size(pipe, base, size, prompts, adapters, factor, args, device)
    for size, ratio in ratios.items():
        print(f"encounter / plain at {size}px: {ratio:.2f}x (target < 2x)")


def bench_size(pipe, base, size, prompts, adapters, factor, args, device) -> float:
    import torch

    from fakestudio.encounter import DEFAULT_CONTEXT, plan_tiles, region_masks, regional_render
    from fakestudio.generate import render
    from fakestudio.record import GenerationRecord

    masks = region_masks("left-right", size, size, 0.04)

    def rec(seed):
        return GenerationRecord(
            prompt="photo of aaa1 man, a scene",
            negative_prompt="",
            seed=seed,
            steps=args.steps,
            guidance=7.0,
            width=size,
            height=size,
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

    def regional(seed, batched=True, context=DEFAULT_CONTEXT):
        regional_render(pipe, rec(seed), prompts, adapters, masks, batched=batched, context=context)

    cases = {
        "plain": plain,
        "encounter": regional,
        "encounter, context full": lambda s: regional(s, context=None),
        "3 whole-picture passes": lambda s: regional(s, batched=False, context=None),
    }
    runs = {k: [] for k in cases}
    for i in range(args.repeat + 1):  # first round warms up
        for name, fn in cases.items():
            sync()
            t = time.perf_counter()
            fn(i)
            sync()
            if i:
                runs[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in runs.items()}
    tiles, _ = plan_tiles(masks, factor, DEFAULT_CONTEXT)
    area = sum(t.size[0] * t.size[1] for t in tiles if t) / (masks.shape[1] * masks.shape[2])
    print(
        f"{size}px: tiles {[t.size for t in tiles if t]} (latent px) "
        f"= {area:.2f} pictures of UNet work per guidance branch (plain: 1)"
    )
    for k, v in med.items():
        print(f"  {k:24s}: {v:7.3f} s/image  ({v / med['plain']:.2f}x plain)")
    return med["encounter"] / med["plain"]


if __name__ == "__main__":
    main()
