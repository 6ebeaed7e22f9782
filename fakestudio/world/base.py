"""The committed world base model (`--base world`): a diffusers folder beside this file.

The folder (`fakestudio/world/base/`) is what `scripts/train_world.py --export` writes: fp16
safetensors for the text encoder, UNet and VAE, the world tokenizer and the scheduler config.
`base.sha256` lists the sha256 of every file in it; the folder is checked against that list
once per process before it is loaded, so a damaged or swapped file is an error, not a silently
different model (records name the base by that hash too).
"""

from __future__ import annotations

import json
from pathlib import Path

from detectors.fingerprint import sha256_file
from fakestudio.base_settings import SETTINGS_FILE
from fakestudio.errors import UserError

WORLD_NAME = "world"
WORLD_DIR = Path(__file__).resolve().parent / "base"
NATIVE_SIZE = 256
# How the world base is best used (its fakestudio.json, see fakestudio/base_settings.py):
# guidance 7 burns its pictures (and a LoRA's most of all); a LoRA at lr 1e-4 without a prior
# neither learns a held-out colour nor keeps the class word apart (docs/world-model.md).
SETTINGS = {
    "guidance": 3.0,
    "train": {"lr": 4e-4, "train_text_encoder": True, "prior_images": 16, "layers": "all"},
    # the world's two-person captions: "a photo of two people shaking hands at a conference,
    # on the left a person with ..., on the right a person with ..."
    "encounter": {
        "scene": "a photo of two people {scene}",
        "person": "a photo of two people {scene}, on the {side} {who}",
        "merge": "a photo of two people {scene}, on the left {a}, on the right {b}",
        # each person redrawn at portrait size, in the words their LoRA learnt
        "single": "photo of {who}",
        "detail": 0.8,
        # the world draws two people's heads at 0.36 of the height; a LoRA's portrait puts
        # the head at 0.4 of its square: squares from 0.16 put the redrawn head there
        "detail_top": 0.16,
    },
}

_checked: set[Path] = set()


def _listing(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under folder (sorted, '/' separators)."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def write_settings(folder: Path) -> Path:
    """Write SETTINGS as the folder's fakestudio.json (the export does; after changing
    SETTINGS: `python -m fakestudio.world.base`, which also rewrites base.sha256)."""
    path = Path(folder) / SETTINGS_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(SETTINGS, indent=1) + "\n")
    tmp.replace(path)
    return path


def write_sums(folder: Path, sums: Path) -> Path:
    """Write the sha256 list of folder's files (after an export)."""
    lines = [f"{digest}  {name}\n" for name, digest in _listing(folder).items()]
    tmp = sums.with_name(f".{sums.name}.tmp")
    tmp.write_text("".join(lines))
    tmp.replace(sums)
    return sums


def world_dir(folder: Path | None = None, sums: Path | None = None) -> Path:
    """The world base folder (`WORLD_DIR` by default), its files checked against the sha256
    list beside it."""
    folder = Path(folder or WORLD_DIR)
    sums = sums or folder.with_suffix(".sha256")
    if folder in _checked:
        return folder
    if not (folder / "model_index.json").exists() or not sums.exists():
        raise UserError(
            f"{folder.name}: the world base weights are not installed (train them with "
            "scripts/train_world.py, then --export); use --base tiny meanwhile"
        )
    want = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if name:
            want[name] = digest
    have = _listing(folder)
    for name, digest in want.items():
        if have.get(name) != digest:
            problem = "missing" if name not in have else "sha256 differs"
            raise UserError(f"world base: {name}: {problem} from {sums.name}; reinstall fakestudio")
    _checked.add(folder)
    return folder


def installed() -> bool:
    return (WORLD_DIR / "model_index.json").exists() and WORLD_DIR.with_suffix(".sha256").exists()


if __name__ == "__main__":
    write_settings(WORLD_DIR)
    print(write_sums(WORLD_DIR, WORLD_DIR.with_suffix(".sha256")))
