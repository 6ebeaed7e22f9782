"""Time to label and write one 512x512 image vs a plain Pillow PNG save of the same pixels.

Both are measured in the same run, interleaved, on one core (torch is not involved). The
labeller's work: watermark embed, XMP + `parameters` chunk, PNG encode, C2PA sign, atomic
write (with fsync), perceptual hash and ledger row. Prints the medians and the ratio.
Target (issue 2): the labeller adds < 60 ms per 512x512 image.

    .venv/bin/python bench/label_overhead.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def photo_like(size=512, seed=0) -> Image.Image:
    """Smooth shapes plus sensor-like noise: compresses like a photo, not like flat colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack(
        [
            128 + 90 * np.sin(6 * x + 2 * y),
            128 + 80 * np.cos(5 * y - 3 * x * y),
            128 + 70 * np.sin(9 * x * y + 1),
        ],
        axis=-1,
    )
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    os.environ.setdefault("FAKESTUDIO_HOME", tempfile.mkdtemp(prefix="fs-bench-"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from fakestudio.label.identity import ensure_identity
    from fakestudio.label.labeller import LabelOptions, write_labelled
    from fakestudio.record import GenerationRecord

    out = Path(tempfile.mkdtemp(prefix="fs-bench-out-"))
    opts = LabelOptions(fmt="png", identity=ensure_identity())
    image = photo_like()
    plain, labelled = [], []
    for i in range(args.repeat + 2):  # two warm-up rounds
        rec = GenerationRecord(
            prompt="bench",
            negative_prompt="",
            seed=i,
            steps=20,
            guidance=7.0,
            width=512,
            height=512,
            scheduler="euler",
            base_model="tiny",
            base_sha256="0" * 64,
        )
        t = time.perf_counter()
        image.save(out / f"plain-{i}.png")
        t_plain = time.perf_counter() - t
        t = time.perf_counter()
        write_labelled(image, rec, out, f"labelled-{i}", opts)
        t_label = time.perf_counter() - t
        if i >= 2:
            plain.append(t_plain)
            labelled.append(t_label)
    p, lab = statistics.median(plain), statistics.median(labelled)
    print(f"plain Pillow PNG save   : {p * 1000:7.1f} ms (median of {args.repeat})")
    print(f"label + write (labeller): {lab * 1000:7.1f} ms")
    print(f"added by labelling      : {(lab - p) * 1000:7.1f} ms   (target < 60 ms)")
    print(f"ratio labelled/plain    : {lab / p:7.2f}x")


if __name__ == "__main__":
    main()
