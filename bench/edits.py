"""What happens to a picture in the wild: the edits the watermark benchmarks and tests apply.

Each edit takes and returns an RGB uint8 array; lossy saves go through Pillow as a platform
would (JPEG with Pillow's default 4:2:0 chroma subsampling unless said otherwise).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

Edit = Callable[[np.ndarray], np.ndarray]


def _img(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(a, dtype=np.uint8))


def _arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"))


def save(a: np.ndarray, fmt: str, **kw) -> np.ndarray:
    buf = io.BytesIO()
    _img(a).save(buf, fmt, **kw)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return _arr(im)


def jpeg(q: int) -> Edit:
    return lambda a: save(a, "JPEG", quality=q)


def webp(q: int) -> Edit:
    return lambda a: save(a, "WEBP", quality=q)


def resize(f: float) -> Edit:
    def run(a):
        h, w = a.shape[:2]
        return _arr(_img(a).resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS))

    return run


def longest(side: int) -> Edit:
    return lambda a: resize(side / max(a.shape[:2]))(a)


def crop(frac: float) -> Edit:
    """Centre crop keeping `frac` of each side."""

    def run(a):
        h, w = a.shape[:2]
        ch, cw = round(h * frac), round(w * frac)
        y, x = (h - ch) // 2, (w - cw) // 2
        return a[y : y + ch, x : x + cw].copy()

    return run


def window(frac: float, seed: int) -> Edit:
    """A random window keeping `frac` of each side."""

    def run(a):
        h, w = a.shape[:2]
        rng = np.random.default_rng(seed)
        ch, cw = round(h * frac), round(w * frac)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return a[y : y + ch, x : x + cw].copy()

    return run


def crop_back(frac: float) -> Edit:
    """Centre crop, then resized back to the original size."""

    def run(a):
        h, w = a.shape[:2]
        return _arr(_img(crop(frac)(a)).resize((w, h), Image.LANCZOS))

    return run


def brightness(f: float) -> Edit:
    return lambda a: _arr(ImageEnhance.Brightness(_img(a)).enhance(f))


def contrast(f: float) -> Edit:
    return lambda a: _arr(ImageEnhance.Contrast(_img(a)).enhance(f))


def gamma(g: float) -> Edit:
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return lambda a: lut[a]


def blur(radius: float) -> Edit:
    return lambda a: _arr(_img(a).filter(ImageFilter.GaussianBlur(radius)))


def rotate(deg: float) -> Edit:
    """Rotate (bicubic), then crop to the largest upright rectangle with no empty corner."""

    def run(a):
        h, w = a.shape[:2]
        r = _img(a).rotate(deg, resample=Image.BICUBIC, expand=False)
        t = math.radians(abs(deg))
        # largest axis-aligned rectangle of the same aspect inside the rotated frame
        s = min(w, h) / (min(w, h) * math.cos(t) + max(w, h) * math.sin(t))
        cw, ch = int(w * s) - 2, int(h * s) - 2
        x, y = (w - cw) // 2, (h - ch) // 2
        return _arr(r.crop((x, y, x + cw, y + ch)))

    return run


def hflip(a: np.ndarray) -> np.ndarray:
    return a[:, ::-1].copy()


def noise(frac: float, seed: int = 0) -> Edit:
    def run(a):
        rng = np.random.default_rng(seed)
        n = rng.normal(0.0, 255.0 * frac, a.shape)
        return np.clip(np.rint(a + n), 0, 255).astype(np.uint8)

    return run


def chain(*edits: Edit) -> Edit:
    def run(a):
        for e in edits:
            a = e(a)
        return a

    return run


def _then_jpeg(e: Edit, q: int = 85) -> Edit:
    return chain(e, jpeg(q))


#: The issue's list of single edits, and the combined chain, by name.
EDITS: dict[str, Edit] = {
    "none": lambda a: a,
    "jpeg90": jpeg(90),
    "jpeg75": jpeg(75),
    "jpeg50": jpeg(50),
    "webp80": webp(80),
    "resize0.5+jpeg85": _then_jpeg(resize(0.5)),
    "resize0.75+jpeg85": _then_jpeg(resize(0.75)),
    "resize1.3+jpeg85": _then_jpeg(resize(1.3)),
    "longest1080+jpeg85": _then_jpeg(longest(1080)),
    "crop90": crop(0.9),
    "crop80": crop(0.8),
    "window60": window(0.6, seed=7),
    "crop80+resize_back": crop_back(0.8),
    "brightness+20": brightness(1.2),
    "brightness-20": brightness(0.8),
    "contrast+20": contrast(1.2),
    "contrast-20": contrast(0.8),
    "gamma0.8": gamma(0.8),
    "blur1": blur(1.0),
    "rotate+2": rotate(2),
    "rotate-2": rotate(-2),
    "rotate+5": rotate(5),
    "rotate-5": rotate(-5),
    "hflip": hflip,
    "noise5%": noise(0.05),
    "screenshot": chain(resize(1.3), jpeg(90)),
    "crop90+resize0.75+jpeg75": chain(crop(0.9), resize(0.75), jpeg(75)),
}
