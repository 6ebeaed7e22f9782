"""Draw the sample "photos" the demo trains on: two fictional people, made by this project.

No photo of any real person is used or shipped. Each person has a fixed look (skin tone,
hair, eyes, shirt) and varies in pose, framing, light and background, like a small personal
photo set. Deterministic: running it again rewrites the same files.

    .venv/bin/python samples/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
SIZE = 384
PEOPLE = {
    # folder: (skin, hair, eye colour, shirt, hair style)
    "ad4x": ((224, 172, 140), (60, 35, 20), (40, 90, 60), (40, 80, 170), "long"),
    "b0bz": ((150, 100, 70), (20, 20, 25), (60, 40, 20), (190, 60, 40), "short"),
}
PER_PERSON = 8


def portrait(look, rng: np.random.Generator) -> Image.Image:
    skin, hair, eye, shirt, style = look
    bg_top = tuple(int(v) for v in rng.integers(90, 230, 3))
    bg_bottom = tuple(int(v * 0.6) for v in bg_top)
    y = np.linspace(0, 1, SIZE)[:, None, None]
    bg = (1 - y) * np.array(bg_top) + y * np.array(bg_bottom)
    img = Image.fromarray(np.broadcast_to(bg, (SIZE, SIZE, 3)).astype(np.uint8))
    d = ImageDraw.Draw(img)
    scale = rng.uniform(0.8, 1.1)
    cx = SIZE / 2 + rng.uniform(-50, 50)
    cy = SIZE * 0.42 + rng.uniform(-20, 25)
    fw, fh = 70 * scale, 92 * scale
    # shoulders and shirt
    d.ellipse((cx - 150 * scale, cy + fh * 0.9, cx + 150 * scale, cy + fh * 3.2), fill=shirt)
    d.rectangle((cx - 24 * scale, cy + fh * 0.6, cx + 24 * scale, cy + fh * 1.1), fill=skin)
    # hair behind the head
    if style == "long":
        d.ellipse((cx - fw * 1.25, cy - fh * 1.15, cx + fw * 1.25, cy + fh * 1.5), fill=hair)
    else:
        d.ellipse((cx - fw * 1.08, cy - fh * 1.12, cx + fw * 1.08, cy + fh * 0.3), fill=hair)
    # face, ears
    d.ellipse((cx - fw * 1.12, cy - fh * 0.15, cx - fw * 0.85, cy + fh * 0.3), fill=skin)
    d.ellipse((cx + fw * 0.85, cy - fh * 0.15, cx + fw * 1.12, cy + fh * 0.3), fill=skin)
    d.ellipse((cx - fw, cy - fh, cx + fw, cy + fh), fill=skin)
    # fringe
    d.chord((cx - fw, cy - fh * 1.05, cx + fw, cy - fh * 0.1), 180, 360, fill=hair)
    # eyes with brows, nose shadow, mouth
    gaze = rng.uniform(-4, 4)
    for side in (-1, 1):
        ex, ey = cx + side * fw * 0.42, cy + fh * 0.05
        d.ellipse(
            (ex - 14 * scale, ey - 8 * scale, ex + 14 * scale, ey + 8 * scale), fill=(245, 245, 240)
        )
        d.ellipse(
            (ex - 6 * scale + gaze, ey - 6 * scale, ex + 6 * scale + gaze, ey + 6 * scale), fill=eye
        )
        d.ellipse(
            (ex - 2.5 * scale + gaze, ey - 2.5 * scale, ex + 2.5 * scale + gaze, ey + 2.5 * scale),
            fill=(10, 10, 10),
        )
        d.line(
            (ex - 16 * scale, ey - 17 * scale, ex + 14 * scale, ey - 19 * scale),
            fill=hair,
            width=max(2, int(5 * scale)),
        )
    shade = tuple(int(c * 0.8) for c in skin)
    d.polygon(
        [(cx, cy + fh * 0.1), (cx - 9 * scale, cy + fh * 0.42), (cx + 7 * scale, cy + fh * 0.44)],
        fill=shade,
    )
    smile = rng.uniform(0.15, 0.5)
    d.arc(
        (cx - 26 * scale, cy + fh * 0.45, cx + 26 * scale, cy + fh * (0.62 + smile * 0.3)),
        10,
        170,
        fill=(150, 50, 50),
        width=max(2, int(4 * scale)),
    )
    # light from one side, a little blur and sensor noise: photo-like statistics
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.2))).astype(np.float32)
    light = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.2), SIZE)[None, :, None]
    arr = arr * (light if rng.random() < 0.5 else light[:, ::-1])
    arr += rng.normal(0, 4.0, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def main() -> None:
    for name, look in PEOPLE.items():
        folder = HERE / name
        folder.mkdir(exist_ok=True)
        rng = np.random.default_rng(sum(map(ord, name)))
        for i in range(PER_PERSON):
            portrait(look, rng).save(folder / f"{name}_{i + 1:02d}.jpg", quality=88)
    print(f"wrote {len(PEOPLE) * PER_PERSON} sample photos under {HERE}")


if __name__ == "__main__":
    main()
