"""Resolve `--base` to a loaded diffusers pipeline, offline.

Accepted:
- `world` (the default, `DEFAULT_BASE`; `$FAKESTUDIO_BASE` changes it): the small base the
  project trains on its procedural world of drawn people (`fakestudio/world/`,
  docs/world-model.md), 256 px, committed in `fakestudio/world/base/` and loaded once its
  files match `base.sha256` (`scripts/train_world.py --export fakestudio/world/base` writes
  both).
- `tiny`: the embedded Stable-Diffusion-architecture model with random weights, built once
  (it draws noise; the unit tests use it because it is fast).
- a diffusers folder (SD1.x/2.x `StableDiffusionPipeline` or SDXL `StableDiffusionXLPipeline`).
- an Automatic1111-style single-file checkpoint (`.safetensors`), see `single_file.py`.
- a Hugging Face hub id, only when it is already in the local cache.

The base is identified in records by a display name (never an absolute path) and a sha256
over its weight files, so two people with the same weights see the same hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from detectors.fingerprint import sha256_files
from fakestudio.base_settings import BaseSettings, read_settings
from fakestudio.errors import UserError
from fakestudio.world.base import WORLD_DIR, WORLD_NAME, world_dir

SD_WEIGHT_SUFFIXES = (".safetensors", ".bin")
BASE_ENV = "FAKESTUDIO_BASE"


# `--base` when none is given: the world base, which draws what a prompt asks (94% of the
# attributes read back by a probe, docs/world-model.md); the tests pin $FAKESTUDIO_BASE=tiny.
DEFAULT_BASE = "world"


def default_base() -> str:
    """`--base` when none is given: $FAKESTUDIO_BASE, else DEFAULT_BASE."""
    import os

    return os.environ.get(BASE_ENV) or DEFAULT_BASE


def base_folder(base: str) -> Path | None:
    """The diffusers folder `--base` names, without loading it (None: no folder of its own)."""
    if base == WORLD_NAME:
        return WORLD_DIR
    path = Path(base).expanduser()
    return path if path.is_dir() else None


def base_settings(base: str) -> BaseSettings:
    """How `--base` likes to be used: its folder's fakestudio.json, else fakestudio's defaults."""
    return read_settings(base_folder(base))


def light_base(base: str) -> bool:
    """The two built-in bases, both 256 px natively."""
    return base in ("tiny", "world")


@dataclass
class BaseModel:
    pipe: object  # StableDiffusionPipeline | StableDiffusionXLPipeline
    name: str  # display name: "tiny", a folder name, a file name, a hub id
    sha256: str
    family: str  # "sd1" | "sdxl"
    settings: BaseSettings = field(default_factory=BaseSettings)  # its fakestudio.json

    @property
    def native_size(self) -> int:
        """The side the UNet was built for: latent sample size x the VAE's downsampling."""
        return int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)


def _hash_files(files: list[Path]) -> str:
    """sha256 over the files' bytes; remembered by (path, size, mtime) so multi-GB bases hash once."""
    from detectors.paths import cache_dir

    key = json.dumps(
        [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(files)]
    )
    memo = cache_dir() / "hashes.json"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    known[key] = sha256_files(sorted(files))
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(".tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(memo)
    except OSError:
        pass  # a read-only cache only costs time
    return known[key]


def folder_sha256(folder: Path) -> str:
    """sha256 over the weight files of a diffusers folder."""
    files = [
        p
        for sub in ("unet", "vae", "text_encoder", "text_encoder_2")
        for p in sorted((folder / sub).glob("*"))
        if p.suffix in SD_WEIGHT_SUFFIXES
    ]
    return _hash_files(files)


def file_sha256(path: Path) -> str:
    return _hash_files([path])


def _family_of_folder(folder: Path) -> str:
    index = json.loads((folder / "model_index.json").read_text())
    cls = index.get("_class_name", "")
    if "XL" in cls or "text_encoder_2" in index:
        return "sdxl"
    if "StableDiffusion" in cls:
        return "sd1"
    raise UserError(
        f"{folder.name}: model_index.json names {cls!r}, not a Stable Diffusion pipeline"
    )


def _load_folder(folder: Path, dtype) -> object:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    family = _family_of_folder(folder)
    cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    kwargs = {"local_files_only": True, "torch_dtype": dtype}
    if family == "sd1":
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        return cls.from_pretrained(folder, **kwargs), family
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{folder}: cannot load as a diffusers pipeline ({_first_line(e)})") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def hub_cached_folder(repo_id: str) -> Path | None:
    """The snapshot folder of repo_id in the local hub cache, or None; never downloads."""
    import os

    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
    except Exception:
        return None


def load_base(
    base: str | None = None,
    *,
    config: Path | None = None,
    tokenizer: Path | None = None,
    dtype=None,
    device: str | None = None,
) -> BaseModel:
    """Load `--base` offline; every failure is a UserError with one clear line."""
    from fakestudio.quiet import quiet_libraries

    quiet_libraries()
    import torch

    from fakestudio.tiny import TINY_NAME, ensure_tiny

    base = base or default_base()
    dtype = dtype or torch.float32
    if base == WORLD_NAME:
        folder = world_dir()
        pipe, family = _load_folder(folder, dtype)
        model = BaseModel(pipe, WORLD_NAME, folder_sha256(folder), family, read_settings(folder))
    elif base == TINY_NAME:
        folder = ensure_tiny()
        pipe, family = _load_folder(folder, dtype)
        model = BaseModel(pipe, TINY_NAME, folder_sha256(folder), family)
    else:
        path = Path(base).expanduser()
        if path.is_dir():
            if not (path / "model_index.json").exists():
                raise UserError(
                    f"{base}: not a diffusers folder (no model_index.json); "
                    "pass a Stable Diffusion diffusers folder or a .safetensors checkpoint"
                )
            pipe, family = _load_folder(path, dtype)
            model = BaseModel(
                pipe, path.resolve().name, folder_sha256(path), family, read_settings(path)
            )
        elif path.is_file():
            from fakestudio.single_file import BaseModelError, load_single_file

            try:
                pipe = load_single_file(path, config=config, tokenizer=tokenizer, torch_dtype=dtype)
            except BaseModelError as e:
                raise UserError(str(e)) from e
            family = "sdxl" if "XL" in type(pipe).__name__ else "sd1"
            model = BaseModel(pipe, path.name, file_sha256(path), family)
        elif looks_like_path(base):
            raise UserError(f"{base}: base model not found (no such file or folder)")
        else:
            folder = hub_cached_folder(base)
            if folder is None:
                raise UserError(
                    f"{base}: not in the local Hugging Face cache and fakestudio never downloads "
                    f"weights; fetch them yourself (`huggingface-cli download {base}`) "
                    "or pass a local diffusers folder or .safetensors file to --base"
                )
            pipe, family = _load_folder(folder, dtype)
            model = BaseModel(pipe, base, folder_sha256(folder), family)
    if device:
        model.pipe.to(device)
    model.pipe.set_progress_bar_config(disable=True)
    return model


def looks_like_path(base: str) -> bool:
    return (
        base.startswith((".", "/", "~"))
        or base.endswith((".safetensors", ".ckpt"))
        or (base.count("/") != 1)
    )
