"""The talk: the story of one fake, and the quiz pairs, read from `--talk DIR`.

Two layouts are understood:

* a `fakestudio demo` output folder: `datasets/<person>/images/` (the prepared photos),
  `loras/*.safetensors`, `images/` (the encounter and its `uploaded-*.jpg` copies). The story
  walks photos -> LoRA -> the fake -> its label -> the stripped copy -> verify again; the quiz
  pairs a training photo with the fake, then another with the uploaded copy.
* any folder with `real/` and `fake/` sub-folders: the quiz pairs them in name order.

Pictures are served by number, never by path. Which side shows the fake is shuffled per pair
(the same every run of one folder).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from fakestudio.errors import UserError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif"}

# Shown at the reveal: what people manage without tools (Nightingale & Farid, PNAS 2022,
# "AI-synthesized faces are indistinguishable from real faces and more trustworthy").
BASELINES = [
    {"label": "people told real from AI faces, untrained", "value": 48.2},
    {"label": "after training on the tells", "value": 59.0},
]
BASELINE_NOTE = (
    "Nightingale & Farid, PNAS 2022: 315 people picked real versus StyleGAN2 faces at 48.2% "
    "(chance is 50%); 219 others, trained on the tells and told after each answer, reached "
    "59.0%. The synthetic faces were rated more trustworthy than the real ones."
)


@dataclass
class Picture:
    id: int
    path: Path
    role: str  # "photo", "fake", "copy", "real"
    caption: str


@dataclass
class Pair:
    round: int
    a: Picture
    b: Picture
    fake: str  # "a" or "b"
    note: str = ""  # said at the reveal


@dataclass
class Talk:
    kind: str  # "demo", "folders" or "empty"
    pictures: list[Picture] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    story: dict = field(default_factory=dict)  # demo: people, lora, fake, copies

    def picture(self, pid: int) -> Picture | None:
        return self.pictures[pid] if 0 <= pid < len(self.pictures) else None


def check_talk_dir(folder: Path) -> None:
    if not folder.is_dir():
        raise UserError(f"--talk {folder}: no such folder")
    talk = load_talk(folder)
    if not talk.pairs:
        raise UserError(
            f"--talk {folder}: no pictures to show; give a `fakestudio demo` output folder "
            "or a folder with real/ and fake/ sub-folders"
        )


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def load_talk(folder: Path | None) -> Talk:
    if folder is None:
        return Talk("empty")
    if (folder / "images").is_dir() and (folder / "datasets").is_dir():
        return _demo(folder)
    if (folder / "real").is_dir() and (folder / "fake").is_dir():
        return _folders(folder)
    return Talk("empty")


def _shuffle(folder: Path, i: int) -> str:
    seed = hashlib.sha256(f"{folder.resolve()}|{i}".encode()).digest()
    return random.Random(seed).choice("ab")


def _add(talk: Talk, path: Path, role: str, caption: str) -> Picture:
    pic = Picture(len(talk.pictures), path, role, caption)
    talk.pictures.append(pic)
    return pic


def _pair(talk: Talk, folder: Path, other: Picture, fake: Picture, note: str) -> None:
    i = len(talk.pairs)
    side = _shuffle(folder, i)
    a, b = (fake, other) if side == "a" else (other, fake)
    talk.pairs.append(Pair(i, a, b, side, note))


def _folders(folder: Path) -> Talk:
    talk = Talk("folders")
    for real, fake in zip(_images(folder / "real"), _images(folder / "fake"), strict=False):
        r = _add(talk, real, "real", real.name)
        f = _add(talk, fake, "fake", fake.name)
        _pair(talk, folder, r, f, f"{fake.name} is the generated one.")
    return talk


def _demo(folder: Path) -> Talk:
    talk = Talk("demo")
    images = _images(folder / "images")
    fakes = [p for p in images if not p.name.startswith("uploaded-")]
    copies = [p for p in images if p.name.startswith("uploaded-")]
    people = []
    for ds in sorted(p for p in (folder / "datasets").iterdir() if p.is_dir()):
        photos = _images(ds / "images")
        if not photos:
            continue
        meta = {}
        try:
            meta = json.loads((ds / "dataset.json").read_text())
        except (OSError, ValueError):
            pass
        lora = folder / "loras" / f"{ds.name}.safetensors"
        people.append(
            {
                "token": ds.name,
                "photos": [
                    _add(talk, p, "photo", f"{ds.name}: training photo").id for p in photos[:6]
                ],
                "count": len(photos),
                "consent": str((meta.get("consent") or {}).get("statement") or "")[:300]
                if isinstance(meta.get("consent"), dict)
                else str(meta.get("consent") or "")[:300],
                "lora": lora.name if lora.is_file() else None,
                "lora_kb": round(lora.stat().st_size / 1024) if lora.is_file() else None,
            }
        )
    if not fakes or not people:
        return Talk("empty")
    fake = _add(talk, fakes[0], "fake", "the encounter, as generated")
    copy_pics = [
        _add(talk, p, "copy", p.stem.replace("uploaded-", "after upload: ").replace("-", " "))
        for p in copies
    ]
    talk.story = {
        "people": people,
        "fake": fake.id,
        "copies": [c.id for c in copy_pics],
    }
    first = talk.pictures[people[0]["photos"][0]]
    _pair(talk, folder, first, fake, "The generated one is the encounter the studio made.")
    if copy_pics:
        second = people[-1]["photos"][min(1, len(people[-1]["photos"]) - 1)]
        _pair(
            talk,
            folder,
            talk.pictures[second],
            copy_pics[0],
            "The generated one went through a social-media upload: metadata stripped, re-encoded.",
        )
    return talk
