"""Text-to-image generation: a base model, optional LoRAs, and the labeller at the exit.

Reads top to bottom: check the options, load the base, load the LoRAs, set the scheduler,
then for each image: denoise with its own seed (seed + index, as Automatic1111 does), label,
write atomically. The same seed and settings give the same pixels, watermark included,
because the watermark payload is derived from the settings (see record.py).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from detectors.files import clean_stale_parts
from fakestudio.errors import UserError
from fakestudio.label.labeller import (
    LabelOptions,
    Written,
    check_format,
    check_writable,
    file_payload,
    write_labelled,
)
from fakestudio.lora import LoraSpec, apply_loras, extract_prompt_loras
from fakestudio.record import GenerationRecord
from fakestudio.schedulers import canonical


@dataclass
class GenerateConfig:
    prompt: str
    out: Path
    negative: str = ""
    n: int = 1
    seed: int | None = None  # None: a random seed, recorded
    steps: int = 20
    guidance: float | None = None  # None: the base's recommendation (base_settings), else 7
    width: int | None = None  # None: the base's native size (256 on tiny)
    height: int | None = None
    scheduler: str = "euler"
    base: str | None = None  # None: default_base() ($FAKESTUDIO_BASE, else "world")
    config: Path | None = None  # single-file checkpoints: a diffusers folder with matching configs
    tokenizer: Path | None = None  # single-file checkpoints: a CLIP tokenizer folder
    loras: list[LoraSpec] = field(default_factory=list)
    lora_dir: Path | None = None
    fmt: str = "png"
    badge: bool = False
    record_prompt: bool = False
    device: str | None = None  # None: cuda when available, else cpu


MAX_IMAGES = 10_000
MAX_SEED = 2**64 - 1
MAX_STEPS = 1000
MAX_SIDE = 4096
MIN_SIDE = 256  # the invisible watermark needs at least this


def check_text(name: str, text: str) -> None:
    """A prompt must be text: a shell can pass bytes that are not UTF-8 (Python keeps them as
    lone surrogates, which no tokenizer accepts)."""
    for i, ch in enumerate(text):
        if "\ud800" <= ch <= "\udfff":
            raw = ord(ch) - 0xDC00 if "\udc80" <= ch <= "\udcff" else None
            what = f"byte 0x{raw:02x}" if raw is not None else "a lone surrogate"
            raise UserError(f"{name} is not valid UTF-8 text ({what} at character {i})")


def check_render(cfg) -> None:
    """The options generate and encounter share (-n, --steps, --guidance, --width/--height,
    --scheduler, --format), with the same limits for both."""
    if cfg.n < 1:
        raise UserError(f"-n must be at least 1 (got {cfg.n})")
    if cfg.n > MAX_IMAGES:
        raise UserError(f"-n {cfg.n}: at most {MAX_IMAGES} images per run")
    if cfg.steps < 1 or cfg.steps > MAX_STEPS:
        raise UserError(f"--steps must be between 1 and {MAX_STEPS} (got {cfg.steps})")
    guidance = getattr(cfg, "guidance", None)
    if guidance is not None and not math.isfinite(guidance):
        raise UserError(f"--guidance {guidance}: must be a finite number")
    for name, v in (("--width", cfg.width), ("--height", cfg.height)):
        if v is None:
            continue
        if v % 8:
            raise UserError(f"{name} {v} is not divisible by 8")
        if v < MIN_SIDE:
            raise UserError(
                f"{name} {v} is under {MIN_SIDE}: the invisible watermark needs at least {MIN_SIDE}"
            )
        if v > MAX_SIDE:
            raise UserError(f"{name} {v} is over {MAX_SIDE}")
    canonical(cfg.scheduler)
    check_format(cfg.fmt)


def check_config(cfg: GenerateConfig) -> None:
    """Everything that can be checked before loading a model."""
    check_text("the prompt", cfg.prompt)
    check_text("--negative", cfg.negative)
    if not cfg.prompt.strip():
        raise UserError("the prompt is empty")
    if cfg.seed is not None and not 0 <= cfg.seed <= MAX_SEED - max(0, cfg.n - 1):
        raise UserError(
            f"--seed {cfg.seed} with -n {cfg.n}: seeds run past 2^64-1 ({MAX_SEED}); "
            "seeds are 0 .. 2^64-1"
        )
    check_render(cfg)
    for spec in cfg.loras:
        if not spec.path.is_file():
            raise UserError(f"{spec.path}: LoRA file not found")


def generate(
    cfg: GenerateConfig, on_step: Callable[[int, int], None] | None = None
) -> list[Written]:
    """Generate cfg.n labelled images into cfg.out; return what was written.

    on_step(done, total) is called after every denoising step across all images.
    """
    check_config(cfg)
    prompt, prompt_loras = extract_prompt_loras(cfg.prompt, cfg.lora_dir)
    specs = [*cfg.loras, *prompt_loras]
    out_dir = check_writable(cfg.out)
    clean_stale_parts(out_dir)  # temp files a killed run left (our own naming only)

    import torch

    from fakestudio.devices import resolve_device
    from fakestudio.models import load_base
    from fakestudio.schedulers import make_scheduler

    device = resolve_device(cfg.device)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    base = load_base(
        cfg.base, config=cfg.config, tokenizer=cfg.tokenizer, dtype=dtype, device=device
    )
    cfg = with_base_guidance(cfg, base)
    pipe = base.pipe
    lora_refs = apply_loras(pipe, specs)
    pipe.scheduler = make_scheduler(cfg.scheduler, pipe.scheduler.config)

    native = base.native_size
    width, height = cfg.width or native, cfg.height or native
    seed = cfg.seed if cfg.seed is not None else random.randrange(2**32)
    opts = LabelOptions(fmt=cfg.fmt, badge=cfg.badge)
    total, done = cfg.n * cfg.steps, 0

    def step_end(_pipe, _i, _t, kwargs):
        nonlocal done
        done += 1
        if on_step:
            on_step(done, total)
        return kwargs

    written = []
    for i in range(cfg.n):
        record = make_record(cfg, base, prompt, seed + i, (width, height), lora_refs)
        image = render(pipe, record, step_end)
        stem = f"{record.seed}-{i:02d}-{file_payload(record, opts.fmt, opts.badge)}"
        written.append(write_labelled(image, record, out_dir, stem, opts))
    return written


def with_base_guidance(cfg, base):
    """cfg with its guidance set: the one asked for, else what the base recommends."""
    if cfg.guidance is not None:
        return cfg
    return dataclasses.replace(cfg, guidance=base.settings.guidance)


def make_record(
    cfg, base, prompt: str, seed: int, size: tuple[int, int], loras, composition=None
) -> GenerationRecord:
    """What one picture will be made from; `cfg` is a GenerateConfig or an EncounterConfig."""
    return GenerationRecord(
        prompt=prompt,
        negative_prompt=cfg.negative,
        seed=seed,
        steps=cfg.steps,
        guidance=cfg.guidance,
        width=size[0],
        height=size[1],
        scheduler=canonical(cfg.scheduler),
        base_model=base.name,
        base_sha256=base.sha256,
        loras=loras,
        record_prompt=cfg.record_prompt,
        composition=composition,
    )


def render(pipe, record: GenerationRecord, step_end=None):
    """Denoise one image for `record` (pixels only: callers label them)."""
    import torch

    generator = torch.Generator("cpu").manual_seed(record.seed)
    result = pipe(
        prompt=record.prompt,
        negative_prompt=record.negative_prompt or None,
        num_inference_steps=record.steps,
        guidance_scale=record.guidance,
        width=record.width,
        height=record.height,
        generator=generator,
        callback_on_step_end=step_end,
    )
    return result.images[0]
