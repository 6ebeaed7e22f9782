"""Every setting of a LoRA training run, in one typed dataclass.

Precedence: the field defaults below < a `--config train.toml` file < command-line options.
The TOML file uses the field names (dashes or underscores), at the top level or under a
`[train]` table:

    rank = 16
    lr = 5e-5
    lr_scheduler = "cosine"
    warmup_steps = 50
    min_snr_gamma = 5.0
    class_images = "class/"

`check()` catches everything that can be caught before a model is loaded.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from fakestudio.errors import UserError
from fakestudio.models import base_settings, default_base

LR_SCHEDULERS = ("constant", "cosine", "linear")
MIXED_PRECISION = ("no", "fp16", "bf16")
FORMATS = ("peft", "kohya", "both")
PREDICTION_TYPES = ("epsilon", "v_prediction")
# which UNet layers carry the LoRA: "attention" (the usual LoRA: attention projections only) or
# "all" (also the transformers' in/out and feed-forward layers and the ResNet convolutions,
# what kohya calls LoCon): a UNet whose outer blocks have no attention needs "all" to reach them
LAYERS = ("attention", "all")
MAX_PRIOR_IMAGES = 1000
STORY_REPEATS = 100  # default length: every photo seen 100 times (24 photos -> 2,400 image-steps)


@dataclass
class TrainConfig:
    dataset: Path
    out: Path  # the LoRA file (`--format both`: OUT in kohya form + OUT's stem.peft.safetensors)
    # model
    base: str | None = None  # None: default_base() ($FAKESTUDIO_BASE, else "world")
    base_config: Path | None = None  # single-file checkpoints: a diffusers folder of configs
    tokenizer: Path | None = None  # single-file checkpoints: a CLIP tokenizer folder
    prediction_type: str | None = None  # None: what the base's scheduler says
    # LoRA
    rank: int = 8
    alpha: float | None = None  # None: alpha = rank (scale 1)
    train_text_encoder: bool = False
    layers: str = "attention"  # LAYERS
    # schedule
    max_steps: int | None = None  # optimizer steps; None: `epochs`, else STORY_REPEATS repeats
    epochs: int | None = None
    batch_size: int = 1  # per process
    grad_accum: int = 1
    lr: float = 1e-4
    text_encoder_lr: float | None = None  # None: lr
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    resolution: int | None = None  # None: the dataset's; another value must match it
    seed: int = 0
    # diffusion loss
    min_snr_gamma: float | None = None  # 5.0 is the paper's value
    noise_offset: float = 0.0
    caption_dropout: float = 0.0
    class_images: Path | None = None  # prior preservation: a folder of class images
    class_prompt: str | None = None  # None: "photo of a <class word>"
    prior_images: int = 0  # no class_images: the base draws this many first (train/prior.py)
    prior_loss_weight: float = 1.0
    # speed and memory
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    cache_latents: bool = True
    cache_text: bool = True  # only when the text encoder is not trained
    channels_last: bool | None = None  # None: on CUDA (tensor cores); on CPU it only costs memory
    compile: bool = False  # torch.compile the UNet (first steps are slow)
    device: str | None = None  # None: what accelerate picks (CUDA when present); "cpu" forces it
    # checkpoints and previews
    run_dir: Path | None = None  # None: OUT's folder / "<stem>-training"
    checkpoint_every: int = 0  # 0: only at the end and on Ctrl-C
    keep_checkpoints: int = 2
    resume: bool = False
    sample_every: int = 0
    sample_prompt: str | None = None  # None: the dataset's first caption
    sample_steps: int = 20
    sample_guidance: float | None = None  # None: the base's recommendation, else 7
    sample_seed: int = 1234
    # output
    format: str = "kohya"  # the form every tool loads (A1111, ComfyUI, kohya, diffusers)
    # guards
    explode_factor: float = 10.0  # loss above this many times its running mean ...
    explode_patience: int = 5  # ... for this many steps in a row stops the run
    extra: dict = field(default_factory=dict)  # free-form notes copied into the header

    def outputs(self) -> list[tuple[str, Path]]:
        """[(form, path)] written at the end."""
        out = Path(self.out)
        if self.format == "both":  # OUT is the kohya file, so A1111's tag is <lora:OUT's stem:1>
            return [("kohya", out), ("peft", out.with_name(out.stem + ".peft.safetensors"))]
        return [(self.format, out)]

    def run_folder(self) -> Path:
        out = Path(self.out)
        return Path(self.run_dir) if self.run_dir else out.with_name(out.stem + "-training")

    def check(self) -> None:
        """Option errors a user can fix, before anything slow happens."""
        out = Path(self.out)
        if out.suffix != ".safetensors":
            raise UserError(f"--out {out}: the LoRA file name must end in .safetensors")
        _positive("--rank", self.rank)
        _positive("--batch-size", self.batch_size)
        _positive("grad_accum", self.grad_accum)
        _positive("sample_steps", self.sample_steps)
        _positive("keep_checkpoints", self.keep_checkpoints)
        if self.max_steps is not None:
            _positive("--steps", self.max_steps)
        if self.epochs is not None:
            _positive("--epochs", self.epochs)
        if self.max_steps is not None and self.epochs is not None:
            raise UserError("give --steps or --epochs, not both")
        if self.alpha is not None and self.alpha <= 0:
            raise UserError(f"--alpha must be positive (got {self.alpha})")
        if not (0 < self.lr < 1):
            raise UserError(f"--lr {self.lr} is out of range (0, 1); LoRAs train at ~1e-4")
        if self.text_encoder_lr is not None and not (0 < self.text_encoder_lr < 1):
            raise UserError(f"text_encoder_lr {self.text_encoder_lr} is out of range (0, 1)")
        if self.resolution is not None and (self.resolution % 8 or self.resolution < 64):
            raise UserError(
                f"--resolution {self.resolution} must be divisible by 8 and at least 64"
            )
        _choice("--lr-scheduler", self.lr_scheduler, LR_SCHEDULERS)
        _choice("--mixed-precision", self.mixed_precision, MIXED_PRECISION)
        _choice("--format", self.format, FORMATS)
        _choice("--layers", self.layers, LAYERS)
        if self.prediction_type is not None:
            _choice("prediction_type", self.prediction_type, PREDICTION_TYPES)
        if not 0 <= self.prior_images <= MAX_PRIOR_IMAGES:
            raise UserError(
                f"prior_images must be between 0 and {MAX_PRIOR_IMAGES} (got {self.prior_images})"
            )
        for name, v in (
            ("--checkpoint-every", self.checkpoint_every),
            ("--sample-every", self.sample_every),
            ("--warmup-steps", self.warmup_steps),
        ):
            if v < 0:
                raise UserError(f"{name} must be 0 or more (got {v})")
        if not (0 <= self.caption_dropout < 1):
            raise UserError(f"caption_dropout must be in [0, 1) (got {self.caption_dropout})")
        if self.min_snr_gamma is not None and self.min_snr_gamma <= 0:
            raise UserError(f"min_snr_gamma must be positive (got {self.min_snr_gamma})")
        if self.noise_offset < 0:
            raise UserError(f"noise_offset must be 0 or more (got {self.noise_offset})")
        if self.prior_loss_weight < 0:
            raise UserError(f"prior_loss_weight must be 0 or more (got {self.prior_loss_weight})")
        if self.class_images is not None and not Path(self.class_images).is_dir():
            raise UserError(f"{self.class_images}: class image folder not found")
        if self.explode_factor <= 1 or self.explode_patience < 1:
            raise UserError("explode_factor must be > 1 and explode_patience at least 1")
        if self.mixed_precision == "fp16":
            import torch

            on_cpu = self.device == "cpu" or not torch.cuda.is_available()
            if on_cpu:
                raise UserError(
                    "--mixed-precision fp16 needs a CUDA GPU; use bf16 or no on this machine"
                )

    def to_json(self) -> dict:
        """Plain JSON values (paths as strings)."""
        d = dataclasses.asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _positive(name: str, v: int) -> None:
    if v < 1:
        raise UserError(f"{name} must be at least 1 (got {v})")


def _choice(name: str, v: str, choices: tuple[str, ...]) -> None:
    if v not in choices:
        raise UserError(f"{name} {v!r} is not one of: {', '.join(choices)}")


# ---------------------------------------------------------------------------- TOML and merging


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def read_toml(path: Path) -> dict:
    """A `train.toml` as {field: value}; UserError for unknown keys or wrong types."""
    import tomllib

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the config file ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
    if isinstance(raw.get("train"), dict):
        raw = {**{k: v for k, v in raw.items() if k != "train"}, **raw["train"]}
    return check_settings(raw, path)


# what a base's fakestudio.json may not set (besides the run's files): the base, free notes
NOT_FROM_A_BASE = ("base", "extra")


def check_settings(raw: dict, source, *, refuse: tuple[str, ...] = ()) -> dict:
    """{field: value} from a TOML file or a base's `train` settings: each name known (dashes
    or underscores; `steps` is max_steps) and each value of its field's type (ints pass for
    floats), else a UserError naming `source`, the setting and what it must be."""
    known = set(field_names()) - set(refuse)
    out = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name == "steps":
            name = "max_steps"
        if name in ("dataset", "out"):
            raise UserError(f"{source}: give {name} on the command line, not in a settings file")
        if name not in known:
            raise UserError(
                f"{source}: unknown setting {key!r}; known settings: {', '.join(sorted(known))}"
            )
        out[name] = _coerce(name, value, source)
    return out


def _coerce(name: str, value, source) -> object:
    """Check a TOML value against the dataclass field's type (ints pass for floats)."""
    hints = typing.get_type_hints(TrainConfig)
    kinds = _kinds(hints[name])
    if value is None and type(None) in kinds:
        return None
    if Path in kinds and isinstance(value, str):
        return Path(value).expanduser()
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    for k in kinds:
        if (
            k is not type(None)
            and isinstance(value, k)
            and not (k is int and isinstance(value, bool))
        ):
            return value
    want = " or ".join(k.__name__ for k in kinds if k is not type(None))
    raise UserError(f"{source}: {name} must be {want} (got {value!r})")


def _kinds(hint) -> tuple:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(typing.get_args(hint))
    return (typing.get_origin(hint) or hint,)


def make_config(dataset: Path, out: Path, toml: Path | None = None, **options) -> TrainConfig:
    """Defaults < the base's fakestudio.json < TOML file < options (None options left out)."""
    values: dict = {}
    if toml is not None:
        values.update(read_toml(toml))
    values.update({k: v for k, v in options.items() if v is not None})
    base = base_settings(str(values.get("base") or default_base()))
    values = check_settings(base.train, base.source, refuse=NOT_FROM_A_BASE) | values
    values.pop("dataset", None)
    values.pop("out", None)
    return TrainConfig(dataset=Path(dataset), out=Path(out), **values)
