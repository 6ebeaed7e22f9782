"""A prepared dataset -> bucketed batches of latents and text embeddings.

- Batches never mix aspect-ratio buckets. The order of an epoch is a pure function of
  (seed, epoch), so a resumed run needs only its step count to find its place, and every
  process of a multi-process run takes every P-th batch of the same global order.
- Latents are encoded once (the VAE posterior's mean) when `cache_latents` is on; text
  embeddings once per distinct caption when the text encoder is not trained. Captions are
  tokenised once either way: the training step never touches a tokenizer.
- Prior preservation: class images are cropped to the bucket of the batch they join, so
  instance and class images go through the UNet together in one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fakestudio.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def open_dataset(path: Path, resolution: int | None):
    """`fakestudio.dataset.load_dataset`, plus the checks only training makes."""
    from fakestudio.dataset import load_dataset

    ds = load_dataset(path)
    if resolution is not None and resolution != ds.resolution:
        raise UserError(
            f"{ds.root}: the dataset was prepared for {ds.resolution} px but --resolution is "
            f"{resolution}; prepare it again with --resolution {resolution}, or train at "
            f"{ds.resolution}"
        )
    for im in ds.images:
        if im.bucket[0] % 8 or im.bucket[1] % 8:
            raise UserError(f"{ds.root}: {im.file}: bucket {im.bucket} is not divisible by 8")
    return ds


def epoch_batches(
    buckets: list[tuple[int, int]], batch_size: int, seed: int, epoch: int, processes: int
) -> list[list[int]]:
    """The global batch order of one epoch: lists of example indices, one bucket per batch,
    padded (by repeating from the start) to a multiple of `processes`."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    by_bucket: dict[tuple[int, int], list[int]] = {}
    for i, b in enumerate(buckets):
        by_bucket.setdefault(tuple(b), []).append(i)
    batches = []
    for key in sorted(by_bucket):
        members = by_bucket[key]
        order = [members[j] for j in torch.randperm(len(members), generator=g).tolist()]
        batches += [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    batches = [batches[j] for j in torch.randperm(len(batches), generator=g).tolist()]
    while len(batches) % processes:
        batches.append(batches[len(batches) % processes])
    return batches


def steps_per_epoch(buckets: list[tuple[int, int]], batch_size: int, processes: int) -> int:
    per_bucket: dict[tuple[int, int], int] = {}
    for b in buckets:
        per_bucket[tuple(b)] = per_bucket.get(tuple(b), 0) + 1
    n = sum(math.ceil(c / batch_size) for c in per_bucket.values())
    return math.ceil(n / processes)


def load_pixels(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """An image as a (3, h, w) tensor in [-1, 1], scaled to cover `size` and centre-cropped."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable image ({e})") from None
    w, h = size
    if im.size != (w, h):
        scale = max(w / im.width, h / im.height)
        rw, rh = max(w, round(im.width * scale)), max(h, round(im.height * scale))
        im = im.resize((rw, rh), Image.Resampling.LANCZOS)
        left, top = (rw - w) // 2, (rh - h) // 2
        im = im.crop((left, top, left + w, top + h))
    a = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)
    return a.float().div(127.5).sub(1.0)


def class_prompt(cfg, ds) -> str:
    """The caption of prior preservation's class images."""
    return cfg.class_prompt or f"photo of a {ds.class_word}".strip()


def class_image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no class images (.png, .jpg, .webp) for prior preservation")
    return files


class TextEncoders:
    """The base's tokenizer(s) and text encoder(s): SD1.x/2.x have one, SDXL two."""

    def __init__(self, pipe, family: str):
        self.sdxl = family == "sdxl"
        self.tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if self.sdxl else [])
        self.encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if self.sdxl else [])

    def ids(self, caption: str) -> list[torch.Tensor]:
        """Token ids (one (77,) tensor per tokenizer)."""
        return [
            tok(
                caption,
                padding="max_length",
                max_length=tok.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids[0]
            for tok in self.tokenizers
        ]

    def encode(
        self, ids: list[torch.Tensor], encoders=None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 77) ids per encoder -> (prompt embeddings, SDXL pooled embeddings or None).

        `encoders`: the same models wrapped for training (DDP), when the text encoder trains."""
        encoders = encoders or self.encoders
        device = self.encoders[0].device
        if not self.sdxl:
            return encoders[0](ids[0].to(device))[0], None
        hidden, pooled = [], None
        for te, x in zip(encoders, ids, strict=False):
            out = te(x.to(device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]  # text_embeds of CLIPTextModelWithProjection (the second encoder)
        return torch.cat(hidden, dim=-1), pooled


@dataclass
class Batch:
    latents: torch.Tensor  # (B, 4, h/8, w/8), scaled
    embeds: torch.Tensor  # (B, 77, D)
    pooled: torch.Tensor | None  # SDXL only
    size: tuple[int, int]  # (w, h) in pixels
    n_instance: int  # the first n are dataset images, the rest class images


class TrainData:
    """Everything the loop asks for: `batch(indices, drop, class_indices)`."""

    def __init__(self, ds, pipe, family: str, cfg, device, text_trained: bool, generator):
        self.ds, self.cfg, self.device = ds, cfg, device
        self.vae = pipe.vae
        self.text = TextEncoders(pipe, family)
        self.generator = generator
        self.files = [ds.path(im) for im in ds.images]
        self.buckets = [tuple(im.bucket) for im in ds.images]
        self.captions = [im.caption for im in ds.images]
        self.class_files = class_image_files(cfg.class_images) if cfg.class_images else []
        self.class_prompt = class_prompt(cfg, ds)
        self.cache_text = cfg.cache_text and not text_trained
        self.text_trained = text_trained
        self.train_encoders = None  # set by the loop once the trained encoders are wrapped
        self.ids = {
            c: self.text.ids(c) for c in dict.fromkeys([*self.captions, "", self.class_prompt])
        }
        self.latents: dict = {}  # ("i", index) or ("c", index, bucket) -> latent
        self.embeds: dict[str, tuple] = {}

    # -- caching --------------------------------------------------------------------------

    @torch.no_grad()
    def warm(self, on_progress=None) -> None:
        """Encode what can be cached now: every dataset image, every distinct caption."""
        keys = [("i", i) for i in range(len(self.files))]
        keys += [
            ("c", c, b) for b in sorted(set(self.buckets)) for c in range(len(self.class_files))
        ]
        todo = keys if self.cfg.cache_latents else []
        for n, key in enumerate(todo):
            self._latent(key)
            if on_progress:
                on_progress(n + 1, len(todo))
        if self.cache_text:
            for caption in self.ids:
                self._embed(caption)

    def _encode_pixels(self, pixels: torch.Tensor, sample: bool) -> torch.Tensor:
        vae = self.vae
        pixels = pixels.to(vae.device, vae.dtype)
        dist = vae.encode(pixels).latent_dist
        z = dist.sample(self.generator) if sample else dist.mean
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return ((z - shift) * vae.config.scaling_factor).float()

    def _latent(self, key) -> torch.Tensor:
        if key in self.latents:
            return self.latents[key]
        if key[0] == "i":
            pixels = load_pixels(self.files[key[1]], self.buckets[key[1]])
        else:
            pixels = load_pixels(self.class_files[key[1]], key[2])
        if not self.cfg.cache_latents:
            with torch.no_grad():
                return self._encode_pixels(pixels[None], sample=True)[0].to(self.device)
        with torch.no_grad():
            z = self._encode_pixels(pixels[None], sample=False)[0].to(self.device)
        self.latents[key] = z
        return z

    def _embed(self, caption: str) -> tuple:
        if caption not in self.embeds:
            with torch.no_grad():
                e, p = self.text.encode([x[None] for x in self.ids[caption]])
            self.embeds[caption] = (
                e[0].to(self.device),
                None if p is None else p[0].to(self.device),
            )
        return self.embeds[caption]

    # -- batches --------------------------------------------------------------------------

    def batch(self, indices: list[int], drop: list[bool], class_indices: list[int]) -> Batch:
        """Dataset images `indices` (captions replaced by "" where `drop`), then class images."""
        size = self.buckets[indices[0]]
        keys = [("i", i) for i in indices] + [("c", c, size) for c in class_indices]
        captions = ["" if d else self.captions[i] for i, d in zip(indices, drop, strict=False)]
        captions += [self.class_prompt] * len(class_indices)
        latents = torch.stack([self._latent(k) for k in keys])
        if self.cache_text:
            pairs = [self._embed(c) for c in captions]
            embeds = torch.stack([e for e, _ in pairs])
            pooled = None if pairs[0][1] is None else torch.stack([p for _, p in pairs])
        else:  # encode every step (with gradients when trained), from pre-tokenised ids
            ids = [torch.stack(col) for col in zip(*(self.ids[c] for c in captions), strict=False)]
            with torch.set_grad_enabled(self.text_trained):
                embeds, pooled = self.text.encode(ids, self.train_encoders)
        return Batch(latents, embeds, pooled, size, len(indices))
