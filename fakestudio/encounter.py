"""Two people in one picture who never met: regional composition of two identity LoRAs.

A plain weighted merge of two identity LoRAs (what Automatic1111 does with two `<lora:...>`
tags) adds both deltas to every layer for every pixel, so both faces drift toward a blend.
Here each denoising step runs the UNet on one batch of six samples:

    [uncond, cond] x [background (no adapter), person A (adapter A), person B (adapter B)]

using peft's per-sample `adapter_names` (one UNet call per step), applies classifier-free
guidance per region, and blends the three noise predictions with feathered region masks
(MultiDiffusion / Regional Prompter "latent mode"). The background prompt is the scene; each
person's prompt is "<trigger> <class word>, <scene>". `--merge` gives the naive merge for
comparison.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fakestudio.errors import UserError
from fakestudio.label.labeller import (
    LabelOptions,
    Written,
    check_format,
    check_writable,
    write_labelled,
)
from fakestudio.lora import LoraSpec, apply_loras, read_header
from fakestudio.record import GenerationRecord, LoraRef
from fakestudio.schedulers import canonical

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch
# default left/right layout: two tall boxes with a strip of background around them
LEFT_RIGHT = ((0.02, 0.08, 0.49, 1.0), (0.51, 0.08, 0.98, 1.0))


@dataclass
class Person:
    lora: Path
    trigger: str | None = None  # None: taken from the LoRA's header, if any
    class_word: str | None = None
    weight: float = 1.0


@dataclass
class EncounterConfig:
    persons: list[Person]
    scene: str
    out: Path
    negative: str = ""
    n: int = 1
    seed: int | None = None
    steps: int = 20
    guidance: float = 7.0
    width: int | None = None
    height: int | None = None
    scheduler: str = "euler"
    base: str = "tiny"
    layout: str = (
        "left-right"  # "left-right", "x0,y0,x1,y1;x0,y0,x1,y1" (fractions), or a mask image
    )
    feather: float = 0.04  # mask blur, as a fraction of the image width
    merge: bool = False  # naive weighted merge instead of regions (for comparison)
    fmt: str = "png"
    badge: bool = False
    record_prompt: bool = False
    device: str | None = None
    config: Path | None = None
    tokenizer: Path | None = None
    extra_loras: list[LoraSpec] = field(default_factory=list)


def parse_person(arg: str) -> Person:
    """`FILE` or `FILE:TRIGGER` (a trigger word never contains a path separator or a dot)."""
    head, sep, tail = arg.rpartition(":")
    if sep and head and tail and "/" not in tail and "." not in tail:
        return Person(Path(head).expanduser(), trigger=tail)
    return Person(Path(arg).expanduser())


# ---------------------------------------------------------------------------------------------
# Layout: region masks at latent resolution


def parse_layout(layout: str, n_persons: int = 2):
    """-> ("boxes", [(x0,y0,x1,y1), ...]) or ("mask", Path)."""
    if layout in ("left-right", "lr"):
        return "boxes", list(LEFT_RIGHT)
    if layout in ("right-left", "rl"):
        return "boxes", list(reversed(LEFT_RIGHT))
    path = Path(layout).expanduser()
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"):
        if not path.is_file():
            raise UserError(f"{layout}: layout mask image not found")
        return "mask", path
    try:
        boxes = [tuple(float(v) for v in part.split(",")) for part in layout.split(";")]
    except ValueError:
        raise UserError(
            f"--layout {layout!r}: use left-right, 'x0,y0,x1,y1;x0,y0,x1,y1' (fractions 0-1) or a mask image"
        ) from None
    if len(boxes) != n_persons or any(len(b) != 4 for b in boxes):
        raise UserError(f"--layout {layout!r}: give {n_persons} boxes of four numbers each")
    for b in boxes:
        x0, y0, x1, y1 = b
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise UserError(f"--layout box {b}: need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return "boxes", boxes


def region_masks(
    layout: str, width: int, height: int, feather: float, n_persons: int = 2
) -> np.ndarray:
    """Soft weights (1 + n_persons, h/8, w/8): background first; they sum to 1 at every position."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    kind, spec = parse_layout(layout, n_persons)
    h, w = height // 8, width // 8
    hard = np.zeros((n_persons, h, w), np.float32)
    if kind == "boxes":
        for i, (x0, y0, x1, y1) in enumerate(spec):
            hard[i, round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = 1
    else:
        try:
            with Image.open(spec) as im:
                rgb = (
                    np.asarray(im.convert("RGB").resize((w, h), Image.NEAREST)).astype(np.float32)
                    / 255
                )
        except OSError as e:
            raise UserError(f"{spec}: cannot read the layout mask ({e})") from None
        # red = first person, blue = second person; black (or anything else) = background
        hard[0] = (rgb[..., 0] > 0.5) & (rgb[..., 2] <= 0.5)
        if n_persons > 1:
            hard[1] = (rgb[..., 2] > 0.5) & (rgb[..., 0] <= 0.5)
    for i in range(n_persons):
        if hard[i].sum() == 0:
            raise UserError(f"--layout: the region of person {i + 1} is empty at {width}x{height}")
    sigma = feather * w
    soft = np.stack([gaussian_filter(m, sigma) if sigma > 0 else m for m in hard])
    people = soft.sum(0)
    over = np.maximum(people, 1.0)
    soft = soft / over  # overlapping people share the spot
    background = np.clip(1.0 - soft.sum(0), 0.0, 1.0)
    return np.concatenate([background[None], soft]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Mixed-adapter batches


@contextmanager
def adapter_batch(model, adapter_names: list[str]):
    """Run every LoRA layer of `model` with per-sample adapters (peft's mixed-batch forward)."""
    from peft.tuners.lora import LoraLayer

    def pre_hook(_module, args, kwargs):
        kwargs["adapter_names"] = adapter_names
        return args, kwargs

    handles = [
        m.register_forward_pre_hook(pre_hook, with_kwargs=True)
        for m in model.modules()
        if isinstance(m, LoraLayer)
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@dataclass
class Conditioning:
    """Per-region text conditioning, stacked [uncond x regions, cond x regions]."""

    embeds: object  # tensor (2R, tokens, dim)
    added: dict | None  # SDXL: {"text_embeds": (2R, d), "time_ids": (2R, 6)}


def encode_regions(
    pipe, prompts: list[str], adapters: list[str], negative: str, device, width, height
) -> Conditioning:
    """Encode each region's prompt with that region's text-encoder adapter (if it has one)."""
    import torch

    is_xl = hasattr(pipe, "text_encoder_2")
    conds, unconds, pooled_c, pooled_u = [], [], [], []
    for prompt, adapter in zip(prompts, adapters, strict=True):
        _activate(pipe, adapter)
        if is_xl:
            c, u, pc, pu = pipe.encode_prompt(
                prompt=prompt,
                device=device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=True,
                negative_prompt=negative or None,
            )
            pooled_c.append(pc)
            pooled_u.append(pu)
        else:
            c, u = pipe.encode_prompt(prompt, device, 1, True, negative_prompt=negative or None)
        conds.append(c)
        unconds.append(u)
    embeds = torch.cat(unconds + conds)
    added = None
    if is_xl:
        pooled = torch.cat(pooled_u + pooled_c)
        time_ids = pipe._get_add_time_ids(
            (height, width),
            (0, 0),
            (height, width),
            dtype=embeds.dtype,
            text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim,
        ).to(device)
        added = {"text_embeds": pooled, "time_ids": time_ids.repeat(embeds.shape[0], 1)}
    return Conditioning(embeds, added)


def _activate(pipe, adapter: str) -> None:
    """Make exactly `adapter` active (BASE: none) for plain, non-mixed forwards."""
    if adapter == BASE:
        pipe.disable_lora()
    else:
        pipe.enable_lora()
        weights = getattr(pipe, "_fakestudio_weights", {})
        pipe.set_adapters([adapter], adapter_weights=[weights.get(adapter, 1.0)])


def regional_noise(
    pipe,
    latents,
    t,
    cond: Conditioning,
    adapters: list[str],
    masks,
    guidance: float,
    batched: bool = True,
):
    """One step's blended noise prediction. batched=False runs one UNet pass per region (reference)."""
    import torch

    regions = len(adapters)
    if batched:
        x = pipe.scheduler.scale_model_input(latents.repeat(2 * regions, 1, 1, 1), t)
        with adapter_batch(pipe.unet, adapters + adapters):
            eps = pipe.unet(
                x, t, encoder_hidden_states=cond.embeds, added_cond_kwargs=cond.added
            ).sample
        eps_u, eps_c = eps[:regions], eps[regions:]
    else:
        eps_u, eps_c = [], []
        for r, adapter in enumerate(adapters):
            _activate(pipe, adapter)
            idx = [r, regions + r]
            added = None if cond.added is None else {k: v[idx] for k, v in cond.added.items()}
            x = pipe.scheduler.scale_model_input(latents.repeat(2, 1, 1, 1), t)
            e = pipe.unet(
                x, t, encoder_hidden_states=cond.embeds[idx], added_cond_kwargs=added
            ).sample
            eps_u.append(e[:1])
            eps_c.append(e[1:])
        eps_u, eps_c = torch.cat(eps_u), torch.cat(eps_c)
    per_region = eps_u + guidance * (eps_c - eps_u)  # (R, 4, h, w)
    return (per_region * masks[:, None]).sum(0, keepdim=True)


def regional_render(
    pipe,
    record: GenerationRecord,
    prompts: list[str],
    adapters: list[str],
    masks: np.ndarray,
    step_end: Callable[[], None] | None = None,
    batched: bool = True,
    output_type: str = "pil",
):
    """Denoise one picture with regional prompts/adapters; a PIL image (or float array, "np")."""
    import torch

    device = pipe.unet.device
    dtype = pipe.unet.dtype
    generator = torch.Generator("cpu").manual_seed(record.seed)
    cond = encode_regions(
        pipe, prompts, adapters, record.negative_prompt, device, record.width, record.height
    )
    pipe.enable_lora()
    m = torch.from_numpy(masks).to(device=device, dtype=dtype)
    pipe.scheduler.set_timesteps(record.steps, device=device)
    shape = (1, pipe.unet.config.in_channels, record.height // 8, record.width // 8)
    latents = (
        torch.randn(shape, generator=generator, dtype=dtype).to(device)
        * pipe.scheduler.init_noise_sigma
    )
    with torch.no_grad():
        for t in pipe.scheduler.timesteps:
            eps = regional_noise(
                pipe, latents, t, cond, adapters, m, record.guidance, batched=batched
            )
            latents = pipe.scheduler.step(eps, t, latents, generator=generator).prev_sample
            if step_end:
                step_end()
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return pipe.image_processor.postprocess(image, output_type=output_type)[0]


# ---------------------------------------------------------------------------------------------
# The command


def person_prompt(person: Person, scene: str) -> str:
    who = " ".join(w for w in (person.trigger, person.class_word) if w) or "a person"
    return f"photo of {who}, {scene}"


def resolve_person(person: Person) -> Person:
    """Fill trigger and class word from our LoRA header when the user did not give them."""
    meta = read_header(person.lora)
    ours = meta.get("fakestudio") if isinstance(meta.get("fakestudio"), dict) else {}
    return Person(
        person.lora,
        trigger=person.trigger or ours.get("trigger"),
        class_word=person.class_word or ours.get("class_word"),
        weight=person.weight,
    )


def check_config(cfg: EncounterConfig) -> None:
    if len(cfg.persons) != 2:
        raise UserError(f"an encounter needs exactly two --person LoRAs (got {len(cfg.persons)})")
    if not cfg.scene.strip():
        raise UserError("the --scene is empty")
    for p in cfg.persons:
        if not p.lora.is_file():
            raise UserError(f"{p.lora}: LoRA file not found")
    for name, v in (("--width", cfg.width), ("--height", cfg.height)):
        if v is not None and (v % 8 or v < 256):
            raise UserError(f"{name} {v}: must be divisible by 8 and at least 256")
    if cfg.n < 1 or cfg.steps < 1:
        raise UserError("-n and --steps must be at least 1")
    canonical(cfg.scheduler)
    check_format(cfg.fmt)
    if not cfg.merge:
        parse_layout(cfg.layout)


def encounter(
    cfg: EncounterConfig, on_step: Callable[[int, int], None] | None = None
) -> list[Written]:
    """Generate cfg.n labelled encounter images (regional, or naive merge with cfg.merge)."""
    check_config(cfg)
    out_dir = check_writable(cfg.out)
    persons = [resolve_person(p) for p in cfg.persons]

    import torch

    from fakestudio.generate import DEFAULT_SIZE, render
    from fakestudio.models import load_base
    from fakestudio.schedulers import make_scheduler

    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    base = load_base(
        cfg.base, config=cfg.config, tokenizer=cfg.tokenizer, dtype=dtype, device=device
    )
    pipe = base.pipe
    pipe.scheduler = make_scheduler(cfg.scheduler, pipe.scheduler.config)
    native = DEFAULT_SIZE["tiny" if base.name == "tiny" else base.family]
    width, height = cfg.width or native, cfg.height or native
    seed = cfg.seed if cfg.seed is not None else random.randrange(2**32)

    refs = load_people(pipe, persons)
    names = [f"lora{i}" for i in range(len(persons))]
    composition = {
        "mode": "merge" if cfg.merge else "regional",
        "persons": [
            {"lora": r.name, "trigger": p.trigger, "class_word": p.class_word}
            for r, p in zip(refs, persons, strict=True)
        ],
    }
    if not cfg.merge:
        kind, spec = parse_layout(cfg.layout)
        composition["layout"] = (
            {"kind": "boxes", "boxes": [list(b) for b in spec]}
            if kind == "boxes"
            else {"kind": "mask", "file": Path(spec).name}
        )
        composition["feather"] = cfg.feather
        masks = region_masks(cfg.layout, width, height, cfg.feather, len(persons))
        prompts = [cfg.scene] + [person_prompt(p, cfg.scene) for p in persons]
        adapters = [BASE, *names]
    else:
        pipe.set_adapters(names, adapter_weights=[p.weight for p in persons])
        who = " and ".join(
            person_prompt(p, "").removesuffix(", ").removeprefix("photo of ") for p in persons
        )
        merged_prompt = f"photo of {who}, {cfg.scene}"

    total, done = cfg.n * cfg.steps, 0

    def tick(*_args):
        nonlocal done
        done += 1
        if on_step:
            on_step(done, total)
        return _args[-1] if _args else None

    written = []
    opts = LabelOptions(fmt=cfg.fmt, badge=cfg.badge)
    for i in range(cfg.n):
        record = GenerationRecord(
            prompt=merged_prompt if cfg.merge else cfg.scene,
            negative_prompt=cfg.negative,
            seed=seed + i,
            steps=cfg.steps,
            guidance=cfg.guidance,
            width=width,
            height=height,
            scheduler=canonical(cfg.scheduler),
            base_model=base.name,
            base_sha256=base.sha256,
            loras=refs,
            record_prompt=cfg.record_prompt,
            composition=composition,
        )
        if cfg.merge:
            image = render(pipe, record, tick)
        else:
            image = regional_render(pipe, record, prompts, adapters, masks, tick)
        stem = f"encounter-{record.seed}-{i:02d}-{'merge' if cfg.merge else 'regional'}"
        written.append(write_labelled(image, record, out_dir, stem, opts))
    return written


def load_people(pipe, persons: list[Person]) -> list[LoraRef]:
    """Load each person's LoRA as its own adapter (lora0, lora1, ...) and remember the weights."""
    refs = apply_loras(pipe, [LoraSpec(p.lora, p.weight) for p in persons])
    if len(refs) != len(persons):
        raise UserError("each --person LoRA needs a non-zero weight")
    refs = [
        LoraRef(r.name, r.sha256, r.weight, p.trigger or r.trigger)
        for r, p in zip(refs, persons, strict=True)
    ]
    pipe._fakestudio_weights = {f"lora{i}": p.weight for i, p in enumerate(persons)}
    return refs
