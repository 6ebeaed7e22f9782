"""The encounter's detail pass: each person redrawn at the size their LoRA learnt them.

An identity LoRA learns a person from portraits; in a picture of two people each face is a
quarter of that size, and a small base carries less of the LoRA there (the world base: ad4x's
pink hair in 37.5% of left halves). The remedy of Automatic1111's ADetailer extension: cut a
square around each person, enlarge it to the base's native size, redraw it image-to-image with
that person's LoRA and single-person prompt at `strength` (the share of the denoising schedule
run again: 0.6 keeps the pose and the layout, and redraws face, hair and clothes), shrink it
back and paste it with a feathered edge, only inside that person's region.

The square: as wide as the person's region, from the region's top (heads are at the top of a
standing person), or from `top` (a fraction of the picture's height) for a base that knows
where its people's heads are: the world base draws two people's heads at 0.36 of the height,
and its LoRAs draw a portrait's head at 0.4 of the square, so its squares start at 0.16 and
the redrawn head lands where the first pass put it. Pictures are deterministic from the
record's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATHER = 0.05  # of the square's side: the pasted edge's blur


@dataclass(frozen=True)
class Square:
    x0: int
    y0: int
    side: int

    def box(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x0 + self.side, self.y0 + self.side)


def person_squares(
    masks: np.ndarray, width: int, height: int, top: float | None = None
) -> list[Square]:
    """One square per person region (masks[1:], at any resolution), inside the picture; from
    the region's top, or from `top` x height when that is lower."""
    squares = []
    for m in masks[1:]:
        ys, xs = np.nonzero(m >= 0.5)
        sy, sx = height / m.shape[0], width / m.shape[1]
        x0, x1 = int(xs.min() * sx), int((xs.max() + 1) * sx)
        y0 = int(ys.min() * sy)
        if top is not None:  # never above the region (a layout may put people lower)
            y0 = max(y0, round(top * height))
        side = min(x1 - x0, width, height)
        x0 = min(max(0, x0), width - side)
        y0 = min(max(0, y0), height - side)
        squares.append(Square(x0, y0, side))
    return squares


def redraw_people(
    pipe,
    image,
    squares: list[Square],
    masks: np.ndarray,
    prompts: list[str],
    activate,
    *,
    strength: float,
    guidance: float,
    steps: int,
    seed: int,
    negative: str = "",
    size: int,
):
    """`image` with each person's square redrawn (activate(i) makes person i's adapter the
    only active one)."""
    import torch
    from diffusers import AutoPipelineForImage2Image
    from PIL import Image, ImageFilter

    i2i = AutoPipelineForImage2Image.from_pipe(pipe)
    i2i.set_progress_bar_config(disable=True)
    out = image.copy()
    full = Image.fromarray(np.zeros((image.height, image.width), np.uint8))
    for i, (sq, prompt) in enumerate(zip(squares, prompts, strict=True)):
        activate(i)
        crop = image.crop(sq.box()).resize((size, size), Image.Resampling.LANCZOS)
        generator = torch.Generator("cpu").manual_seed((seed + 1 + i) % 2**64)
        new = i2i(
            prompt=prompt,
            negative_prompt=negative or None,
            image=crop,
            strength=strength,
            guidance_scale=guidance,
            num_inference_steps=steps,
            generator=generator,
        ).images[0]
        new = new.resize((sq.side, sq.side), Image.Resampling.LANCZOS)
        # where to paste: the square, feathered, and only inside this person's region
        region = Image.fromarray((masks[1 + i] * 255).astype(np.uint8)).resize(
            image.size, Image.Resampling.BILINEAR
        )
        edge = max(1, round(sq.side * FEATHER))
        inner = full.copy()
        inner.paste(
            255, (sq.x0 + edge, sq.y0 + edge, sq.x0 + sq.side - edge, sq.y0 + sq.side - edge)
        )
        inner = inner.filter(ImageFilter.GaussianBlur(edge))
        weight = np.asarray(inner, np.float32) * np.asarray(region, np.float32) / 255
        placed = out.copy()
        placed.paste(new, (sq.x0, sq.y0))
        out = Image.composite(placed, out, Image.fromarray(weight.astype(np.uint8)))
    return out
