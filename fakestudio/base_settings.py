"""How a base model likes to be used: `fakestudio.json` in its folder, when it has one.

Bases differ in the settings that work: Stable Diffusion 1.5 draws well at guidance 7, a small
v-prediction model like the world base burns its pictures there; a LoRA on SD learns a face at
lr 1e-4, the world base's LoRAs want more and a prior. A diffusers folder may carry

    {"guidance": 3.0,
     "train": {"lr": 4e-4, "train_text_encoder": true, "prior_images": 16},
     "encounter": {"person": "a photo of two people {scene}, on the {side} {who}"}}

`guidance` is the default of `generate`, `encounter` and `demo`; `train` holds `TrainConfig`
fields, the defaults of `fakestudio train` on that base; `encounter` holds the templates of an
encounter's prompts, in the words the base was trained on (`ENCOUNTER` has the defaults, and
the fields each may use: {scene}, {who} ("ben0a man"), {side} ("left"/"right"), {a}, {b}),
and its detail pass (`detail`: strength, 0: none; `detail_top`: where the squares start). Precedence, lowest first: fakestudio's
defaults < the base's file < a `--config` TOML file < command-line flags. Bases without the file
(tiny, single-file checkpoints, most diffusers folders) get fakestudio's defaults.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from fakestudio.errors import UserError

SETTINGS_FILE = "fakestudio.json"
DEFAULT_GUIDANCE = 7.0
# the encounter's prompts: the background region, each person's region, and --merge; and the
# detail pass (fakestudio/detail.py): its prompt, strength (0: no detail pass) and where its
# squares start (a fraction of the picture's height; None: at the top of each person's region)
ENCOUNTER = {
    "scene": "{scene}",
    "person": "photo of {who}, {scene}",
    "merge": "photo of {a} and {b}, {scene}",
    "single": "photo of {who}, {scene}",
    "detail": 0.0,
    "detail_top": None,
}
NUMBERS = ("detail", "detail_top")  # the encounter settings that are not templates
_FIELDS = {
    "scene": ("scene",),
    "person": ("scene", "who", "side"),
    "merge": ("scene", "a", "b"),
    "single": ("scene", "who"),
}


@dataclass(frozen=True)
class BaseSettings:
    guidance: float = DEFAULT_GUIDANCE
    # TrainConfig field -> value; names and types are checked where they are used, with the
    # TOML file's check (fakestudio/train/config.py: make_config)
    train: dict = field(default_factory=dict)
    encounter: dict = field(default_factory=lambda: dict(ENCOUNTER))  # prompt templates
    source: str = ""  # "<folder>/fakestudio.json", for messages; "" for fakestudio's defaults


def read_settings(folder: Path | None) -> BaseSettings:
    """The folder's `fakestudio.json`, checked; fakestudio's defaults when there is none."""
    if folder is None or not (folder / SETTINGS_FILE).is_file():
        return BaseSettings()
    path = folder / SETTINGS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{folder.name}/{SETTINGS_FILE}: not readable JSON ({e})") from e
    where = f"{folder.name}/{SETTINGS_FILE}"
    if not isinstance(raw, dict) or set(raw) - {"guidance", "train", "encounter"}:
        raise UserError(f"{where}: only 'guidance', 'train' and 'encounter' are known")
    guidance = raw.get("guidance", DEFAULT_GUIDANCE)
    if isinstance(guidance, bool) or not isinstance(guidance, int | float):
        raise UserError(f"{folder.name}/{SETTINGS_FILE}: guidance must be a number")
    if not math.isfinite(guidance) or guidance < 0:
        raise UserError(f"{folder.name}/{SETTINGS_FILE}: guidance must be 0 or more")
    train = raw.get("train", {})
    if not isinstance(train, dict):
        raise UserError(f"{where}: train must be an object of training settings")
    encounter = _templates(raw.get("encounter", {}), where)
    return BaseSettings(float(guidance), dict(train), encounter, where)


def _templates(given, where: str) -> dict:
    """The encounter templates: the defaults, overridden by the base's; each must format."""
    if not isinstance(given, dict) or set(given) - set(ENCOUNTER):
        raise UserError(f"{where}: encounter templates are {sorted(ENCOUNTER)}")
    out = ENCOUNTER | given
    for name in NUMBERS:
        v = out[name]
        if v is None and name == "detail_top":
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
            raise UserError(f"{where}: encounter {name!r} must be a number from 0 to below 1")
    for name, text in out.items():
        if name in NUMBERS:
            continue
        try:
            text.format(**{f: "x" for f in _FIELDS[name]})
        except (AttributeError, KeyError, IndexError, ValueError) as e:
            raise UserError(f"{where}: encounter {name!r} template is not usable ({e!r})") from e
    return out
