"""Two people in one picture who never met: regional composition of two identity LoRAs.

A plain weighted merge of two identity LoRAs (what Automatic1111 does with two `<lora:...>`
tags) adds both deltas to every layer for every pixel, so both faces drift toward a blend.
Here the picture has three regions, background (no adapter), person A (adapter A) and person B
(adapter B), each with its own prompt. At every denoising step each region's UNet pass runs
on its own tile of the latents, the region plus a little context around it, with
classifier-free guidance per region, and the noise predictions are blended with feathered
region masks (MultiDiffusion / Mixture of Diffusers / Regional Prompter "latent mode"):

    [uncond, cond] x [person A tile (adapter A), person B tile (adapter B)]   one UNet call
    [uncond, cond] x [background tile (no adapter)]                             one UNet call

Tiles of the same size share one batched UNet call with peft's per-sample `adapter_names`.
The two person tiles are always made the same size, so the people are one call per step and
the background, a strip at the top in the default layout, a second, small one.
`context="full"` runs every region on the whole picture (all six samples in one call, about
three plain generations of compute). `--merge` gives the naive merge for comparison.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fakestudio.errors import UserError
from fakestudio.generate import MAX_SEED, check_render, check_text
from fakestudio.label.labeller import (
    LabelOptions,
    Written,
    check_writable,
    write_labelled,
)
from fakestudio.lora import LoraSpec, apply_loras, read_header
from fakestudio.record import GenerationRecord, LoraRef

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch
# default left/right layout: the two halves below a strip of background (the scene's top)
LEFT_RIGHT = ((0.0, 0.08, 0.5, 1.0), (0.5, 0.08, 1.0, 1.0))
# how far beyond its region each pass sees (fraction of the picture); "full": whole picture
DEFAULT_CONTEXT = 0.0
TILE_THRESHOLD = 0.01  # mask weight below this is outside a region's tile


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
    guidance: float | None = None  # None: the base's recommendation (base_settings), else 7
    width: int | None = None
    height: int | None = None
    scheduler: str = "euler"
    base: str | None = None  # None: default_base() ($FAKESTUDIO_BASE, else "world")
    layout: str = (
        "left-right"  # "left-right", "x0,y0,x1,y1;x0,y0,x1,y1" (fractions), or a mask image
    )
    feather: float = 0.04  # mask blur, as a fraction of the image width
    context: float | None = DEFAULT_CONTEXT  # None: every region sees the whole picture
    detail: float | None = None  # detail pass strength (detail.py); None: the base's, else 0
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
    layout: str, width: int, height: int, feather: float, n_persons: int = 2, scale: int = 8
) -> np.ndarray:
    """Soft weights (1 + n_persons, h/scale, w/scale) at the latents' size (``scale``: the VAE's
    downsampling, 8 for SD/SDXL): background first; they sum to 1 at every position."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    kind, spec = parse_layout(layout, n_persons)
    h, w = height // scale, width // scale
    hard = np.zeros((n_persons, h, w), np.float32)
    if kind == "boxes":
        for i, (x0, y0, x1, y1) in enumerate(spec):
            hard[i, round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = 1
    else:
        try:
            from detectors.image_io import open_formats

            with Image.open(spec, formats=open_formats()) as im:
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


def parse_context(value: str | None) -> float | None:
    """`--context`: a fraction of the picture (0-1), or "full" (None); not given: the default."""
    if value is None:
        return DEFAULT_CONTEXT
    if value.strip().lower() == "full":
        return None
    try:
        v = float(value)
    except ValueError:
        v = -1.0
    if not 0 <= v <= 1:
        raise UserError(f"--context {value!r}: give a fraction between 0 and 1, or 'full'")
    return v


@dataclass(frozen=True)
class Tile:
    """The part of the latents one region's UNet pass runs on, in latent pixels."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def size(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def _span(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
    """A window of `size` centred on [lo, hi), kept inside [0, limit)."""
    start = min(max((lo + hi - size) // 2, 0), limit - size)
    return start, start + size


def plan_tiles(
    masks: np.ndarray, factor: int, context: float | None = DEFAULT_CONTEXT
) -> tuple[list[Tile | None], np.ndarray]:
    """Where each region's pass runs, and the masks restricted to those tiles.

    A region's tile is the box around its mask (weights >= TILE_THRESHOLD) grown by `context`
    (a fraction of the picture) on each side and rounded up to a multiple of the UNet's
    downsampling `factor`. The people's tiles (regions 1..) get one common size, so they batch
    into one UNet call. Weights outside a region's tile are dropped and the masks renormalised,
    so they still sum to 1 everywhere. A region with no weight at all gets no tile (no pass).
    `context=None`: every region runs on the whole picture, masks unchanged.
    """
    _, h, w = masks.shape
    if context is None:
        return [Tile(0, 0, h, w) if m.max() > 0 else None for m in masks], masks
    boxes: list[tuple[int, int, int, int] | None] = []
    for m in masks:
        ys, xs = np.nonzero(m >= TILE_THRESHOLD)
        if len(ys) == 0:
            boxes.append(None)
            continue
        my, mx = int(np.ceil(context * h)), int(np.ceil(context * w))
        boxes.append(
            (
                max(int(ys.min()) - my, 0),
                max(int(xs.min()) - mx, 0),
                min(int(ys.max()) + 1 + my, h),
                min(int(xs.max()) + 1 + mx, w),
            )
        )

    def rounded(n: int, limit: int) -> int:
        n = max(n, min(2 * factor, limit))
        return min(-(-n // factor) * factor, limit)

    people = [b for b in boxes[1:] if b is not None]
    common = (
        (max(b[2] - b[0] for b in people), max(b[3] - b[1] for b in people)) if people else None
    )
    tiles: list[Tile | None] = []
    for r, b in enumerate(boxes):
        if b is None:
            tiles.append(None)
            continue
        th, tw = common if r > 0 else (b[2] - b[0], b[3] - b[1])
        y0, y1 = _span(b[0], b[2], rounded(th, h), h)
        x0, x1 = _span(b[1], b[3], rounded(tw, w), w)
        tiles.append(Tile(y0, x0, y1, x1))
    kept = np.zeros_like(masks)
    for r, tile in enumerate(tiles):
        if tile is not None:
            kept[r][tile.slices] = masks[r][tile.slices]
    total = kept.sum(0, keepdims=True)
    assert total.min() > 0, "tiles must cover the picture"
    return tiles, (kept / total).astype(np.float32)


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
    pooled: object | None  # SDXL: tensor (2R, d)


def encode_regions(pipe, prompts: list[str], adapters: list[str], negative: str, device):
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
    pooled = torch.cat(pooled_u + pooled_c) if is_xl else None
    return Conditioning(torch.cat(unconds + conds), pooled)


def _activate(pipe, adapter: str) -> None:
    """Make exactly `adapter` active (BASE: none) for plain, non-mixed forwards."""
    if adapter == BASE:
        pipe.disable_lora()
    else:
        pipe.enable_lora()
        weights = getattr(pipe, "_fakestudio_weights", {})
        pipe.set_adapters([adapter], adapter_weights=[weights.get(adapter, 1.0)])


@dataclass
class RegionPlan:
    """What runs where: each region's adapter, tile and (tile-restricted) blend mask."""

    adapters: list[str]
    tiles: list[Tile | None]
    masks: object  # tensor (R, h, w), sums to 1 at every position
    time_ids: object | None = None  # SDXL: tensor (R, 6), each tile's size and crop position

    def groups(self, batched: bool = True) -> list[list[int]]:
        """Regions that share a UNet call: same tile size when batched, else one each."""
        live = [r for r, tile in enumerate(self.tiles) if tile is not None]
        if not batched:
            return [[r] for r in live]
        by_size: dict[tuple[int, int], list[int]] = {}
        for r in live:
            by_size.setdefault(self.tiles[r].size, []).append(r)
        return list(by_size.values())


def plan_regions(
    pipe, adapters: list[str], masks: np.ndarray, width: int, height: int, context, device, dtype
) -> RegionPlan:
    import torch

    factor = 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    tiles, kept = plan_tiles(masks, factor, context)
    time_ids = None
    if hasattr(pipe, "text_encoder_2"):
        # SDXL micro-conditioning: a tile is a crop of the picture, as in SDXL's training
        rows = [
            pipe._get_add_time_ids(
                (height, width),
                (8 * tile.y0, 8 * tile.x0) if tile else (0, 0),
                (8 * tile.size[0], 8 * tile.size[1]) if tile else (height, width),
                dtype=dtype,
                text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim,
            )
            for tile in tiles
        ]
        time_ids = torch.cat(rows).to(device)
    return RegionPlan(
        adapters, tiles, torch.from_numpy(kept).to(device=device, dtype=dtype), time_ids
    )


def regional_noise(pipe, latents, t, cond: Conditioning, plan: RegionPlan, guidance, batched=True):
    """One step's blended noise prediction.

    batched=True: one UNet call per tile size, peft's per-sample adapters in the batch.
    batched=False: one plain UNet pass per region (the reference the batched call must equal).
    """
    import torch

    regions = len(plan.adapters)
    x = pipe.scheduler.scale_model_input(latents, t)
    out = torch.zeros_like(latents)
    for group in plan.groups(batched):
        rows = group + [regions + r for r in group]  # uncond rows, then cond rows
        tiles = [plan.tiles[r] for r in group]
        crops = torch.cat([x[(..., *tile.slices)] for tile in tiles])
        added = None
        if cond.pooled is not None:
            added = {"text_embeds": cond.pooled[rows], "time_ids": plan.time_ids[group + group]}
        kwargs = dict(encoder_hidden_states=cond.embeds[rows], added_cond_kwargs=added)
        if batched:
            names = [plan.adapters[r] for r in group] * 2
            with adapter_batch(pipe.unet, names):
                eps = pipe.unet(crops.repeat(2, 1, 1, 1), t, **kwargs).sample
        else:
            _activate(pipe, plan.adapters[group[0]])
            eps = pipe.unet(crops.repeat(2, 1, 1, 1), t, **kwargs).sample
        k = len(group)
        guided = eps[:k] + guidance * (eps[k:] - eps[:k])
        for i, (r, tile) in enumerate(zip(group, tiles, strict=True)):
            out[(..., *tile.slices)] += plan.masks[r][tile.slices] * guided[i]
    return out


def regional_render(
    pipe,
    record: GenerationRecord,
    prompts: list[str],
    adapters: list[str],
    masks: np.ndarray,
    step_end: Callable[[], None] | None = None,
    batched: bool = True,
    output_type: str = "pil",
    context: float | None = DEFAULT_CONTEXT,
):
    """Denoise one picture with regional prompts/adapters; a PIL image (or float array, "np")."""
    import torch

    device = pipe.unet.device
    dtype = pipe.unet.dtype
    generator = torch.Generator("cpu").manual_seed(record.seed)
    cond = encode_regions(pipe, prompts, adapters, record.negative_prompt, device)
    pipe.enable_lora()
    plan = plan_regions(pipe, adapters, masks, record.width, record.height, context, device, dtype)
    pipe.scheduler.set_timesteps(record.steps, device=device)
    f = pipe.vae_scale_factor  # 8 for SD/SDXL; a VAE may downsample more
    shape = (1, pipe.unet.config.in_channels, record.height // f, record.width // f)
    latents = (
        torch.randn(shape, generator=generator, dtype=dtype).to(device)
        * pipe.scheduler.init_noise_sigma
    )
    with torch.no_grad():
        for t in pipe.scheduler.timesteps:
            eps = regional_noise(pipe, latents, t, cond, plan, record.guidance, batched=batched)
            latents = pipe.scheduler.step(eps, t, latents, generator=generator).prev_sample
            if step_end:
                step_end()
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return pipe.image_processor.postprocess(image, output_type=output_type)[0]


# ---------------------------------------------------------------------------------------------
# The command


def who_of(person: Person) -> str:
    """The words for a person: "ben0a man" (trigger and class word), else "a person"."""
    return " ".join(w for w in (person.trigger, person.class_word) if w) or "a person"


def person_prompt(
    person: Person, scene: str, side: str = "left", template: str = "photo of {who}, {scene}"
) -> str:
    """A person's region prompt (templates: `base_settings.ENCOUNTER`, or the base's own)."""
    return template.format(who=who_of(person), scene=scene, side=side)


def sides_of(masks: np.ndarray) -> list[str]:
    """ "left" / "right" for each person region (masks[1:]), by where its weight lies."""
    xs = np.arange(masks.shape[-1], dtype=np.float32)
    centres = [float((m.sum(0) * xs).sum() / max(m.sum(), 1e-6)) for m in masks[1:]]
    order = sorted(range(len(centres)), key=lambda i: centres[i])
    return ["left" if order.index(i) == 0 else "right" for i in range(len(centres))]


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
    check_text("the --scene", cfg.scene)
    check_text("--negative", cfg.negative)
    if not cfg.scene.strip():
        raise UserError("the --scene is empty")
    if cfg.detail is not None and not 0 <= cfg.detail < 1:
        raise UserError(f"--detail {cfg.detail}: give a strength from 0 to below 1 (0: none)")
    if cfg.seed is not None and not 0 <= cfg.seed <= MAX_SEED - max(0, cfg.n - 1):
        raise UserError(f"--seed {cfg.seed} with -n {cfg.n}: seeds run past 2^64-1 ({MAX_SEED})")
    for p in cfg.persons:
        if not p.lora.is_file():
            raise UserError(f"{p.lora}: LoRA file not found")
    check_render(cfg)
    if not cfg.merge:
        parse_layout(cfg.layout)


def encounter(
    cfg: EncounterConfig, on_step: Callable[[int, int], None] | None = None
) -> list[Written]:
    """Generate cfg.n labelled encounter images (regional, or naive merge with cfg.merge)."""
    check_config(cfg)
    out_dir = check_writable(cfg.out)
    from detectors.files import clean_stale_parts

    clean_stale_parts(out_dir)  # temp files a killed run left (our own naming only)
    persons = [resolve_person(p) for p in cfg.persons]

    import torch

    from fakestudio.devices import resolve_device
    from fakestudio.generate import make_record, render, with_base_guidance
    from fakestudio.models import load_base
    from fakestudio.schedulers import make_scheduler

    device = resolve_device(cfg.device)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    base = load_base(
        cfg.base, config=cfg.config, tokenizer=cfg.tokenizer, dtype=dtype, device=device
    )
    cfg = with_base_guidance(cfg, base)
    pipe = base.pipe
    pipe.scheduler = make_scheduler(cfg.scheduler, pipe.scheduler.config)
    native = base.native_size
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
        composition["context"] = "full" if cfg.context is None else cfg.context
        masks = region_masks(
            cfg.layout, width, height, cfg.feather, len(persons), pipe.vae_scale_factor
        )
        words = base.settings.encounter
        sides = sides_of(masks)
        prompts = [words["scene"].format(scene=cfg.scene)] + [
            person_prompt(p, cfg.scene, side, words["person"])
            for p, side in zip(persons, sides, strict=True)
        ]
        detail = words["detail"] if cfg.detail is None else cfg.detail
        if detail:
            from fakestudio.detail import person_squares

            squares = person_squares(masks, width, height, words["detail_top"])
            singles = [words["single"].format(who=who_of(p), scene=cfg.scene) for p in persons]
            composition["detail"] = {
                "strength": detail,
                "squares": [list(q.box()) for q in squares],
            }
        adapters = [BASE, *names]
    else:
        pipe.set_adapters(names, adapter_weights=[p.weight for p in persons])
        a, b = (who_of(p) for p in persons)
        merged_prompt = base.settings.encounter["merge"].format(a=a, b=b, scene=cfg.scene)

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
        prompt = merged_prompt if cfg.merge else cfg.scene
        record = make_record(cfg, base, prompt, seed + i, (width, height), refs, composition)
        if cfg.merge:
            image = render(pipe, record, tick)
        else:
            image = regional_render(
                pipe, record, prompts, adapters, masks, tick, context=cfg.context
            )
            if detail:
                from fakestudio.detail import redraw_people

                image = redraw_people(
                    pipe, image, squares, masks, singles,
                    lambda k: _activate(pipe, names[k]),
                    strength=detail, guidance=record.guidance, steps=cfg.steps,
                    seed=record.seed, negative=cfg.negative, size=native,
                )  # fmt: skip
        stem = f"encounter-{record.seed}-{i:02d}-{'merge' if cfg.merge else 'regional'}"
        written.append(write_labelled(image, record, out_dir, stem, opts))
    return written


def load_people(pipe, persons: list[Person]) -> list[LoraRef]:
    """Load each person's LoRA as its own adapter (lora0, lora1, ...) and remember the weights."""
    refs = apply_loras(pipe, [LoraSpec(p.lora, p.weight) for p in persons])
    if len(refs) != len(persons):
        raise UserError("each --person LoRA needs a non-zero weight")
    refs = [
        dataclasses.replace(r, trigger=p.trigger or r.trigger)
        for r, p in zip(refs, persons, strict=True)
    ]
    pipe._fakestudio_weights = {f"lora{i}": p.weight for i, p in enumerate(persons)}
    return refs
