"""Training checkpoints: everything needed to continue a run exactly, and nothing pickled.

    RUN_DIR/checkpoints/step-000120/
        lora.safetensors        peft LoRA weights (`unet.*`, `text_encoder.*`)
        optimizer.safetensors   AdamW moments and step counts
        rng.safetensors         torch CPU/CUDA and data-generator states, one set per process
        state.json              step, lr-scheduler state, numpy/python RNG states, loss guard,
                                the settings that must match on resume

A checkpoint is written into a hidden `.step-000120.partial` folder and renamed into place,
so a crash or a full disk never leaves a half checkpoint that `--resume` would pick up.
Only the newest `keep` checkpoints stay. safetensors + JSON (no pickle): loading a
checkpoint cannot run code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fakestudio.errors import UserError

STEP_DIR = re.compile(r"^step-(\d{6,})$")
FORMAT = "fakestudio.checkpoint/1"


@dataclass
class Checkpoint:
    path: Path
    step: int
    lora: dict[str, torch.Tensor]  # "unet.<peft key>", "text_encoder.<peft key>"
    optimizer: dict  # torch optimizer state_dict
    scheduler: dict  # lr scheduler state_dict
    rng: list[dict]  # per process: {"torch", "cuda", "generator", "numpy", "python"}
    state: dict = field(default_factory=dict)  # everything else from state.json


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    folder = checkpoints_dir(run_dir)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = STEP_DIR.match(p.name)
        if m and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


# -- RNG states -------------------------------------------------------------------------------


def capture_rng(generator: torch.Generator) -> dict:
    """This process's random states: torch (CPU, CUDA), the data generator, numpy, python."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "python": _jsonable(random.getstate()),
    }


def restore_rng(rng: dict, generator: torch.Generator) -> None:
    import random

    import numpy as np

    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    generator.set_state(rng["generator"])
    kind, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(_tuples(rng["python"]))


def _jsonable(x):
    return [_jsonable(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


# -- save ---------------------------------------------------------------------------------------


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    lora: dict[str, torch.Tensor],
    optimizer: dict,
    scheduler: dict,
    rng: list[dict],
    state: dict,
    keep: int = 2,
) -> Path:
    """Write checkpoint `step` atomically (a folder renamed into place); prune old ones."""
    from safetensors.torch import save_file

    folder = checkpoints_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:06d}"
    tmp = folder / f".{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        opt_tensors, opt_meta = flatten_optimizer(optimizer)
        rng_tensors, rng_meta = {}, []
        for r, states in enumerate(rng):
            rng_tensors[f"{r}.torch"] = states["torch"]
            rng_tensors[f"{r}.generator"] = states["generator"]
            for i, s in enumerate(states["cuda"]):
                rng_tensors[f"{r}.cuda.{i}"] = s
            rng_meta.append(
                {"numpy": states["numpy"], "python": states["python"], "cuda": len(states["cuda"])}
            )
        for name, tensors in (
            ("lora", {k: v.detach().contiguous().cpu() for k, v in lora.items()}),
            ("optimizer", opt_tensors),
            ("rng", rng_tensors),
        ):
            save_file(tensors, str(tmp / f"{name}.safetensors"))
            _fsync(tmp / f"{name}.safetensors")
        doc = {
            "format": FORMAT,
            "step": step,
            "optimizer": opt_meta,
            "scheduler": scheduler,
            "rng": rng_meta,
            **state,
        }
        (tmp / "state.json").write_text(json.dumps(doc, indent=1, default=str))
        _fsync(tmp / "state.json")
        if final.exists():  # re-saving a step (e.g. resumed at the end): replace it whole
            old = folder / f".{final.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flatten_optimizer(sd: dict) -> tuple[dict, dict]:
    """torch optimizer state_dict -> (tensors for safetensors, JSON for the rest)."""
    tensors, plain = {}, {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                plain[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "plain": plain}


def unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for key, value in [*tensors.items(), *meta.get("plain", {}).items()]:
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = meta["param_groups"]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


# -- load ---------------------------------------------------------------------------------------


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint folder; UserError when it is incomplete or not ours."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        doc = json.loads((path / "state.json").read_text())
        lora = load_file(str(path / "lora.safetensors"))
        opt = load_file(str(path / "optimizer.safetensors"))
        rng_t = load_file(str(path / "rng.safetensors"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable training checkpoint ({e})") from None
    if doc.get("format") != FORMAT:
        raise UserError(f"{path}: not a fakestudio training checkpoint")
    rng = []
    for r, meta in enumerate(doc["rng"]):
        rng.append(
            {
                "torch": rng_t[f"{r}.torch"],
                "generator": rng_t[f"{r}.generator"],
                "cuda": [rng_t[f"{r}.cuda.{i}"] for i in range(meta["cuda"])],
                "numpy": meta["numpy"],
                "python": meta["python"],
            }
        )
    optimizer = unflatten_optimizer(opt, doc.pop("optimizer"))
    scheduler = doc.pop("scheduler")
    doc.pop("rng")
    return Checkpoint(path, int(doc["step"]), lora, optimizer, scheduler, rng, doc)
