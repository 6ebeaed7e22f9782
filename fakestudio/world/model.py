"""The world base model's architecture: Stable Diffusion's classes with small configs.

- tokenizer: CLIP's file format (vocab + merges, CLIP's pre-tokenizer), whose merges are
  learned offline (deterministically) on the world's caption words, so each caption word is
  one token; every byte is a symbol too, so any other word (a trigger such as "ad4x") still encodes;
- text encoder: a 3-layer CLIPTextModel (width 128);
- VAE: a 4-block AutoencoderKL, 8x downsampling, 4 latent channels (256 px -> 32x32x4, as
  Stable Diffusion's): 5 blocks and 16x downsampling blur eyes and glasses past reading, at
  8 or 16 channels alike (docs/world-model.md: the runs that showed it);
- UNet: UNet2DConditionModel 48/96/160/192 channels, one layer per block, cross-attention at
  16x16 and 8x8;
- scheduler: Stable Diffusion's noise schedule (Euler for sampling).
"""

from __future__ import annotations

import re

import numpy as np

from fakestudio.tiny import MAX_TOKENS, byte_vocab
from fakestudio.world.scenes import scene_stream

RESOLUTION = 256
WORD = re.compile(r"[a-z]+|[0-9]|[^\sa-z0-9]+")  # CLIP's pre-tokenizer on lower-case ASCII


def caption_words(n_scenes: int = 3000, seed: int = 0) -> list[str]:
    """The words of world captions (one entry per occurrence), for learning the merges."""
    words: list[str] = []
    stream = scene_stream(seed, two=0.5, held_out=True)
    for _ in range(n_scenes):
        words += WORD.findall(next(stream).caption().lower())
    return words


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges that make every word one symbol (CLIP's "</w>" convention).

    Written out rather than taken from `tokenizers`' trainer, whose ties are broken in hash
    order: the same words must give the same merges (and token ids) on every run."""
    from collections import Counter

    seqs = [tuple(w[:-1]) + (w[-1] + "</w>",) for w in sorted(set(words))]
    merges: list[tuple[str, str]] = []
    while True:
        pairs = Counter(p for s in seqs for p in zip(s, s[1:], strict=False))
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))  # most frequent, then alphabetical
        merges.append(best)
        joined = best[0] + best[1]
        out = []
        for s in seqs:
            new, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    new.append(joined)
                    i += 2
                else:
                    new.append(s[i])
                    i += 1
            out.append(tuple(new))
        seqs = out


def world_tokenizer():
    """The CLIP-format tokenizer whose merges make every world caption word one token."""
    from transformers import CLIPTokenizer

    vocab, _ = byte_vocab()
    specials = [t for t in vocab if t.startswith("<|")]
    for t in specials:
        del vocab[t]
    merges = learn_merges(caption_words())
    for m in merges:
        token = "".join(m)
        if token not in vocab:
            vocab[token] = len(vocab)
    for t in specials:
        vocab[t] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS)


def text_encoder_config(tokenizer, scale: str = "base") -> dict:
    small = scale == "test"
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=32 if small else 128,
        intermediate_size=64 if small else 512,
        num_hidden_layers=1 if small else 3,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=32 if small else 128,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )


def vae_config(scale: str = "base", latent_channels: int = 4, down: int = 8) -> dict:
    """down: the VAE's downsampling factor, 8 (the base's) or 16 (earlier runs' recipes)."""
    small = scale == "test"
    blocks = {8: 4, 16: 5}[down]
    widths = (32, 64, 128, 128) if down == 8 else (32, 64, 96, 128, 128)
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=(8,) * blocks if small else widths,
        latent_channels=latent_channels,
        layers_per_block=1,
        norm_num_groups=4 if small else 16,
        sample_size=RESOLUTION,
    )


def unet_config(scale: str = "base", latent_channels: int = 4, down: int = 8) -> dict:
    """The UNet for latents of a VAE that downsamples `down` times: cross-attention at 16x16
    and 8x8 either way (a 32x32 latent gets one more level, without attention, on top)."""
    small = scale == "test"
    if down == 8:
        return dict(
            sample_size=RESOLUTION // 8,
            in_channels=latent_channels,
            out_channels=latent_channels,
            layers_per_block=1,
            block_out_channels=(8, 16, 16, 32) if small else (48, 96, 160, 192),
            down_block_types=(
                "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"
            ),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32 if small else 128,
            attention_head_dim=4 if small else 8,
            norm_num_groups=8 if small else 16,
        )  # fmt: skip
    return dict(
        sample_size=RESOLUTION // 16,
        in_channels=latent_channels,
        out_channels=latent_channels,
        layers_per_block=1,
        block_out_channels=(16, 16, 32) if small else (64, 128, 192),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32 if small else 128,
        attention_head_dim=4 if small else 8,
        norm_num_groups=8 if small else 32,
    )


def build_models(
    seed: int = 0, scale: str = "base", tokenizer=None, latent_channels: int = 4, down: int = 8
):
    """Fresh (tokenizer, text_encoder, vae, unet) with weights initialised from seed.
    scale "test" is a miniature of the same architecture, for fast tests of the trainer."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tokenizer or world_tokenizer()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_encoder_config(tokenizer, scale)))
        vae = AutoencoderKL(**vae_config(scale, latent_channels, down))
        unet = UNet2DConditionModel(**unet_config(scale, latent_channels, down))
    finally:
        torch.random.set_rng_state(state)
    return tokenizer, text_encoder, vae, unet


def make_pipeline(tokenizer, text_encoder, vae, unet, schedule: dict | None = None):
    """An SD1-style pipeline; ``schedule``: the noise schedule (DDPM arguments) its Euler
    sampler uses, the embedded bases' by default."""
    from diffusers import EulerDiscreteScheduler

    from fakestudio.tiny import make_pipeline as assemble

    scheduler = None
    if schedule is not None:
        scheduler = EulerDiscreteScheduler(**schedule, timestep_spacing="leading")
    return assemble(tokenizer, text_encoder, vae, unet, scheduler)


def to_tensor(images) -> np.ndarray:
    """PIL images -> float32 array N x 3 x H x W in [-1, 1]."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return arr.transpose(0, 3, 1, 2) / 127.5 - 1.0
