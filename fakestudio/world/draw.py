"""Draw world pictures with PIL and numpy: flat shapes, a light gradient, blur and noise.

`render(scene, size)` is deterministic: every random choice comes from the scene's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fakestudio.world.attributes import COLOURS, Person

FACE_RATIO = {"round": 0.92, "oval": 0.76, "long": 0.62}
FRAME = (22, 22, 26)


def _shade(c, k: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, v * k))) for v in c)


def _contrast(c) -> tuple[int, int, int]:
    """A pattern colour that stands out on c (darker on light, lighter on dark)."""
    if sum(c) > 380:
        return _shade(c, 0.45)
    return tuple(int(v + (255 - v) * 0.55) for v in c)


@dataclass(frozen=True)
class Ink:
    """How a shirt's stripes or dots are coloured: `contrast` 1 is the world's own pattern
    colour (`_contrast`), lower values mix it towards the shirt colour; `tint` replaces the
    pattern colour before mixing. Only the probe's training varies it (a generated shirt's
    stripes are often softer and off-colour; the probe must read the pattern's shape)."""

    contrast: float = 1.0
    tint: tuple[int, int, int] | None = None

    def colour(self, shirt) -> tuple[int, int, int]:
        target = np.array(self.tint if self.tint is not None else _contrast(shirt), float)
        mixed = np.array(shirt, float) * (1 - self.contrast) + target * self.contrast
        return tuple(int(round(v)) for v in mixed)


WORLD_INK = Ink()


def _background(kind: str, S: int, rng: np.random.Generator) -> Image.Image:
    y = np.linspace(0, 1, S, dtype=np.float32)[:, None, None]
    if kind == "studio":
        top = rng.integers(80, 230, 3).astype(np.float32)
        arr = (1 - y) * top + y * top * 0.6
        return Image.fromarray(np.broadcast_to(arr, (S, S, 3)).astype(np.uint8))
    if kind == "outdoors":
        sky = np.array([110, 170, 235], np.float32) * rng.uniform(0.85, 1.05)
        grass = np.array([70, 140, 60], np.float32) * rng.uniform(0.8, 1.1)
        horizon = rng.uniform(0.55, 0.7)
        arr = np.where(y < horizon, sky * (0.8 + 0.2 * y), grass)
        img = Image.fromarray(np.broadcast_to(arr, (S, S, 3)).clip(0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 4))):
            x, r = rng.uniform(0, S), rng.uniform(0.06, 0.14) * S
            d.ellipse(
                (x - r, horizon * S - 1.6 * r, x + r, horizon * S + 0.3 * r), fill=(40, 100, 45)
            )
        return img
    if kind == "office":
        wall = tuple(int(v) for v in rng.integers(170, 235, 3))
        img = Image.new("RGB", (S, S), wall)
        d = ImageDraw.Draw(img)
        wx = rng.uniform(0.0, 0.7) * S
        d.rectangle((wx, 0.08 * S, wx + 0.3 * S, 0.5 * S), fill=(175, 210, 240))
        d.rectangle(
            (wx, 0.08 * S, wx + 0.3 * S, 0.5 * S), outline=(250, 250, 250), width=max(2, S // 80)
        )
        sy = rng.uniform(0.55, 0.7) * S
        d.rectangle((0, sy, S, sy + 0.03 * S), fill=_shade(wall, 0.6))
        return img
    if kind == "conference":
        base = np.array([20, 30, 80], np.float32) + rng.integers(0, 40, 3)
        img = Image.new("RGB", (S, S), tuple(int(v) for v in base))
        d = ImageDraw.Draw(img)
        d.rectangle((0, 0.05 * S, S, 0.16 * S), fill=(230, 230, 240))
        for i in range(int(rng.integers(3, 6))):
            x = (i + rng.uniform(0.1, 0.5)) * S / 4
            d.rectangle((x, 0.08 * S, x + 0.12 * S, 0.13 * S), fill=(200, 60, 40))
        for i in range(6):
            x = (i + 0.5) * S / 6
            d.ellipse((x - 0.03 * S, 0.3 * S, x + 0.03 * S, 0.36 * S), fill=_shade(base, 1.8))
        d.rectangle((0, 0.86 * S, S, S), fill=(60, 50, 50))
        return img
    raise ValueError(f"unknown background {kind!r}")


def _shirt(img: Image.Image, p: Person, box, S: int, palette=COLOURS, ink=WORLD_INK) -> None:
    colour = palette["shirt_colour"][p.shirt_colour]
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    layer = Image.new("RGB", img.size, colour)
    d = ImageDraw.Draw(layer)
    pat = ink.colour(colour)
    x0, y0, x1, y1 = box
    period = max(6.0, (y1 - y0) * 0.12)
    if p.shirt_pattern == "striped":
        y = y0
        while y < y1:
            d.rectangle((x0, y, x1, y + period * 0.45), fill=pat)
            y += period
    elif p.shirt_pattern == "dotted":
        r = period * 0.22
        for j, yy in enumerate(np.arange(y0 + period / 2, y1, period)):
            off = period / 2 if j % 2 else 0
            for xx in np.arange(x0 + off, x1, period):
                d.ellipse((xx - r, yy - r, xx + r, yy + r), fill=pat)
    img.paste(layer, (0, 0), mask)


def draw_person(
    img: Image.Image,
    p: Person,
    cx: float,
    cy: float,
    fh: float,
    rng: np.random.Generator,
    palette=COLOURS,
    ink: Ink = WORLD_INK,
) -> dict:
    """Draw one person with the face centred on (cx, cy), face half-height fh (pixels), in
    the colours of ``palette`` (attribute -> value -> RGB; the world's own by default).

    Returns the person's shoulder points (for arms)."""
    d = ImageDraw.Draw(img)
    S = img.size[0]
    skin = palette["skin"][p.skin]
    hair = palette["hair_colour"][p.hair_colour]
    eye = palette["eyes"][p.eyes]
    fw = fh * FACE_RATIO[p.face]
    turn = rng.uniform(-0.12, 0.12) * fw  # features shift a little: the head turns
    gaze = rng.uniform(-0.3, 0.3)
    # body
    _shirt(img, p, (cx - 2.1 * fh, cy + 0.95 * fh, cx + 2.1 * fh, cy + 4.4 * fh), S, palette, ink)
    # hair behind the head
    if p.hair_style == "long":
        d.ellipse((cx - 1.3 * fw, cy - 1.14 * fh, cx + 1.3 * fw, cy + 1.5 * fh), fill=hair)
    elif p.hair_style == "short":
        d.ellipse((cx - 1.1 * fw, cy - 1.14 * fh, cx + 1.1 * fw, cy + 0.2 * fh), fill=hair)
    else:  # curly: a crown of curls
        r = 0.3 * fw
        for k in range(13):
            a = math.pi * (0.95 + 1.1 * k / 12)
            x, y = cx + 1.05 * fw * math.cos(a), cy - 0.05 * fh + 1.08 * fh * math.sin(a)
            d.ellipse((x - r, y - r, x + r, y + r), fill=hair)
    # neck, ears, face
    d.rectangle(
        (cx - 0.34 * fw, cy + 0.6 * fh, cx + 0.34 * fw, cy + 1.15 * fh), fill=_shade(skin, 0.9)
    )
    for side in (-1, 1):
        ex = cx + side * 0.98 * fw
        d.ellipse((ex - 0.16 * fw, cy - 0.15 * fh, ex + 0.16 * fw, cy + 0.25 * fh), fill=skin)
    d.ellipse((cx - fw, cy - fh, cx + fw, cy + fh), fill=skin)
    # fringe
    if p.hair_style == "curly":
        r = 0.22 * fw
        for k in range(5):
            x = cx - 0.6 * fw + 1.2 * fw * k / 4
            d.ellipse((x - r, cy - 0.95 * fh - r, x + r, cy - 0.95 * fh + r), fill=hair)
    else:
        d.chord((cx - fw, cy - 1.04 * fh, cx + fw, cy - 0.25 * fh), 180, 360, fill=hair)
    # beard
    if p.beard == "full":
        d.chord((cx - fw, cy - 0.7 * fh, cx + fw, cy + 1.02 * fh), 10, 170, fill=hair)
        d.rectangle((cx - 0.93 * fw, cy + 0.26 * fh, cx + 0.93 * fw, cy + 0.4 * fh), fill=hair)
    # eyes, brows
    lw = max(2, int(0.045 * fh))
    for side in (-1, 1):
        ex, ey = cx + turn + side * 0.42 * fw, cy + 0.0 * fh
        d.ellipse(
            (ex - 0.25 * fw, ey - 0.13 * fh, ex + 0.25 * fw, ey + 0.13 * fh), fill=(246, 246, 240)
        )
        ir, gx = 0.115 * fh, ex + gaze * 0.1 * fw
        d.ellipse((gx - ir, ey - ir, gx + ir, ey + ir), fill=eye)
        pr = 0.045 * fh
        d.ellipse((gx - pr, ey - pr, gx + pr, ey + pr), fill=(8, 8, 8))
        d.line(
            (ex - 0.27 * fw, ey - 0.24 * fh, ex + 0.25 * fw, ey - 0.27 * fh),
            fill=hair,
            width=lw + 1,
        )
        if p.glasses == "round":
            gr = 0.22 * fh
            d.ellipse((ex - gr, ey - gr, ex + gr, ey + gr), outline=FRAME, width=lw + 1)
        elif p.glasses == "square":
            d.rectangle(
                (ex - 0.3 * fw, ey - 0.19 * fh, ex + 0.3 * fw, ey + 0.19 * fh),
                outline=FRAME,
                width=lw + 1,
            )
    if p.glasses != "none":
        y = cy - 0.02 * fh
        d.line((cx + turn - 0.17 * fw, y, cx + turn + 0.17 * fw, y), fill=FRAME, width=lw)
        for side in (-1, 1):
            d.line(
                (cx + turn + side * 0.68 * fw, y, cx + side * 0.98 * fw, y - 0.03 * fh),
                fill=FRAME,
                width=lw,
            )
    # nose, mouth, moustache
    nx = cx + turn * 1.3
    d.polygon(
        [(nx, cy + 0.08 * fh), (nx - 0.1 * fw, cy + 0.38 * fh), (nx + 0.08 * fw, cy + 0.4 * fh)],
        fill=_shade(skin, 0.78),
    )
    smile = rng.uniform(0.1, 0.5)
    mouth = (150, 45, 50) if p.beard != "full" else (200, 110, 110)
    d.arc(
        (nx - 0.3 * fw, cy + 0.46 * fh, nx + 0.3 * fw, cy + (0.62 + 0.25 * smile) * fh),
        10,
        170,
        fill=mouth,
        width=lw + 1,
    )
    if p.beard == "moustache":
        d.ellipse((nx - 0.4 * fw, cy + 0.4 * fh, nx + 0.4 * fw, cy + 0.56 * fh), fill=hair)
    return {"left": (cx - 1.6 * fh, cy + 1.9 * fh), "right": (cx + 1.6 * fh, cy + 1.9 * fh)}


def _light(arr: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    S = arr.shape[1]
    if kind == "front":
        x = np.linspace(-1, 1, S, dtype=np.float32)
        v = 1.08 - 0.18 * (x[None, :] ** 2 + x[:, None] ** 2)
        return arr * v[:, :, None]
    ramp = np.linspace(rng.uniform(1.1, 1.25), rng.uniform(0.7, 0.85), S, dtype=np.float32)
    if kind == "right":
        ramp = ramp[::-1]
    return arr * ramp[None, :, None]


def render(scene, size: int = 256, palette=COLOURS, ink: Ink = WORLD_INK) -> Image.Image:
    """The picture of a scene (see `scenes.Scene`), size x size pixels. ``palette`` recolours
    it (see `random_palette`: the VAE learns to draw any colour anywhere); ``ink`` colours the
    shirts' patterns (see `Ink`)."""
    rng = np.random.default_rng(scene.seed)
    S = size
    img = _background(scene.background, S, rng)
    if len(scene.people) == 1:
        fh = {"close-up": 0.27, "portrait": 0.2, "half-body": 0.145}[scene.framing] * S
        cx = S * (0.5 + rng.uniform(-0.07, 0.07))
        cy = S * (
            {"close-up": 0.45, "portrait": 0.4, "half-body": 0.34}[scene.framing]
            + rng.uniform(-0.03, 0.03)
        )
        draw_person(img, scene.people[0], cx, cy, fh, rng, palette, ink)
    else:
        fh = 0.12 * S * rng.uniform(0.95, 1.08)
        cy = S * (0.36 + rng.uniform(-0.03, 0.03))
        xs = (0.27 + rng.uniform(-0.03, 0.02), 0.73 + rng.uniform(-0.02, 0.03))
        shoulders = [
            draw_person(img, p, x * S, cy, fh, rng, palette, ink)
            for p, x in zip(scene.people, xs, strict=True)
        ]
        if scene.layout == "handshake":
            d = ImageDraw.Draw(img)
            meet = (S * 0.5, cy + 2.9 * fh)
            w = max(3, int(0.32 * fh))
            for p, start, side in (
                (scene.people[0], shoulders[0]["right"], -1),
                (scene.people[1], shoulders[1]["left"], 1),
            ):
                d.line((start, meet), fill=palette["shirt_colour"][p.shirt_colour], width=w)
                hx, hy, r = meet[0] + side * 0.12 * fh, meet[1], 0.2 * fh
                d.ellipse((hx - r, hy - r, hx + r, hy + r), fill=palette["skin"][p.skin])
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(S / 320)), dtype=np.float32)
    arr = _light(arr, scene.light, rng) * rng.uniform(0.92, 1.06)
    arr += rng.normal(0, 3.0, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def random_palette(rng: np.random.Generator) -> dict[str, dict[str, tuple[int, int, int]]]:
    """The world's palette with every colour replaced by a random one, each on its own: skin,
    hair, eyes and shirt change independently, so a VAE trained on such pictures must carry
    each region's colour (a hue turn of the whole picture can be learnt as one global turn
    of the usual colours, and then pink hair beside ordinary skin is still out of reach)."""
    return {
        a: {v: tuple(int(c) for c in rng.integers(0, 256, 3)) for v in values}
        for a, values in COLOURS.items()
    }
