"""The embedded default base model: a Stable-Diffusion-architecture pipeline with tiny configs.

No real weights exist offline, so `--base tiny` is built from a fixed seed, written once to the
user cache as an ordinary diffusers folder, and from then on loaded through the very same code
path as any user's diffusers folder. Its pictures are abstract; the point is that every real
code path (text encoder, UNet with cross-attention, VAE, scheduler, LoRA, labelling) runs on a
CPU in seconds.

The VAE has four blocks so it downsamples 8x like Stable Diffusion's (256 px -> 32x32 latents).
The tokenizer is a byte-level BPE in CLIP's own file format (vocab.json + merges.txt + the same
pre-tokenizer), with every byte as a symbol and no learned merges: the tiny text encoder's
weights are random, so CLIP's real vocabulary would buy nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from detectors.paths import cache_dir

TINY_NAME = "tiny"
TINY_REVISION = "v1"  # bump when the configs below change: a new cache folder is built
TINY_SEED = 20261124
MAX_TOKENS = 77


def tiny_dir() -> Path:
    return cache_dir() / "models" / f"tiny-sd-{TINY_REVISION}"


def ensure_tiny() -> Path:
    """Return the cached tiny diffusers folder, building it once (atomically) if missing."""
    target = tiny_dir()
    if (target / "model_index.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    try:
        build_tiny(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process built it first
            if not (target / "model_index.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def byte_vocab() -> tuple[dict[str, int], list[str]]:
    # GPT-2/CLIP byte-to-unicode table: printable bytes map to themselves, the rest to 256+.
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    symbols = [chars[b] for b in range(256)]
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, []


def byte_tokenizer():
    """The byte-level CLIP-format tokenizer (every byte a symbol, no merges)."""
    from transformers import CLIPTokenizer

    vocab, merges = byte_vocab()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS)


def text_encoder_config(tokenizer, hidden: int = 64, **overrides) -> dict:
    """CLIPTextConfig arguments for a small text encoder that reads `byte_tokenizer()`."""
    cfg = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=hidden,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    return cfg | overrides


def unet_config(**overrides) -> dict:
    """UNet2DConditionModel arguments: two blocks, cross-attention in the low-resolution one."""
    cfg = dict(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    return cfg | overrides


def vae_config(**overrides) -> dict:
    """AutoencoderKL arguments: four blocks, so it downsamples 8x like Stable Diffusion's."""
    cfg = dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=256,
    )
    return cfg | overrides


# Stable Diffusion's noise schedule
SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
)


def build_tiny(folder: Path) -> None:
    """Build the tiny pipeline deterministically and save it as a diffusers folder."""
    from fakestudio.quiet import quiet_libraries

    quiet_libraries()
    import torch
    from diffusers import (
        AutoencoderKL,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = byte_tokenizer()
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED)
    try:
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_encoder_config(tokenizer)))
        unet = UNet2DConditionModel(**unet_config())
        vae = AutoencoderKL(**vae_config())
    finally:
        torch.random.set_rng_state(gen_state)
    pipe = make_pipeline(tokenizer, text_encoder, vae, unet)
    pipe.save_pretrained(folder, safe_serialization=True)


def make_pipeline(tokenizer, text_encoder, vae, unet, scheduler=None):
    """An SD1-style pipeline from its parts (no safety checker), with the Euler schedule the
    embedded bases use unless another scheduler is given."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    if scheduler is None:
        scheduler = EulerDiscreteScheduler(**SCHEDULE, timestep_spacing="leading")
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
