"""Draw the sample "photos" the demo trains on: two fictional people from fakestudio's world.

No photo of any real person is used or shipped. Each person has a fixed look and varies in
pose, framing, light and background, like a small personal photo set; each also has one
feature no person in the world base's training set has (ad4x: pink hair, b0bz: a yellow
shirt), see fakestudio/world/samples.py. Deterministic: running it again rewrites the same
files.

    .venv/bin/python samples/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

from fakestudio.world.samples import write_samples

HERE = Path(__file__).resolve().parent


def main() -> None:
    written = write_samples(HERE)
    print(f"wrote {len(written)} sample photos under {HERE}")


if __name__ == "__main__":
    main()
