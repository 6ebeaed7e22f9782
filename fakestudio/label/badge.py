"""The optional visible badge: a small "AI-generated" tag in the bottom-right corner."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

TEXT = "AI-generated"


def add_badge(image: Image.Image) -> Image.Image:
    out = image.convert("RGB").copy()
    w, h = out.size
    size = max(10, min(w, h) // 20)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(out, "RGBA")
    left, top, right, bottom = draw.textbbox((0, 0), TEXT, font=font)
    pad = max(3, size // 3)
    bw, bh = right - left + 2 * pad, bottom - top + 2 * pad
    x0, y0 = w - bw - pad, h - bh - pad
    draw.rounded_rectangle((x0, y0, x0 + bw, y0 + bh), radius=pad, fill=(0, 0, 0, 170))
    draw.text((x0 + pad - left, y0 + pad - top), TEXT, font=font, fill=(255, 255, 255, 255))
    return out
