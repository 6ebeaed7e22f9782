"""Prior preservation without a folder of class images: the base draws them (`prior_images`).

DreamBooth's remedy for language drift: while the LoRA learns "photo of ben0a person", it also
trains on what the base itself draws for "photo of a person", so that the class word alone
keeps meaning anyone. With `prior_images = N` (and no `class_images`) the base draws N such
pictures before training starts, into the run folder's `class-images/`. They are generated
images like any other, so they are labelled like any other (watermark, signed manifest, ledger
row). A later run with the same prompt, count, seed, size and base reuses them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FOLDER = "class-images"
DONE = "drawn.json"
STEPS = 20


@dataclass
class _Ask:
    """What generate's record needs (make_record reads these fields)."""

    guidance: float
    steps: int = STEPS
    negative: str = ""
    scheduler: str = "euler"
    record_prompt: bool = False


def draw_class_images(cfg, base, prompt: str, size: int, say=lambda m: None) -> Path:
    """Folder of cfg.prior_images labelled pictures of `prompt` drawn by `base` (reused when a
    former run drew the same)."""
    from fakestudio.generate import make_record, render
    from fakestudio.label.labeller import LabelOptions, write_labelled
    from fakestudio.schedulers import make_scheduler

    folder = cfg.run_folder() / FOLDER
    want = {
        "prompt": prompt,
        "n": cfg.prior_images,
        "seed": cfg.seed,
        "size": size,
        "steps": STEPS,
        "base_sha256": base.sha256,
    }
    done = folder / DONE
    try:
        if json.loads(done.read_text()) == want:
            return folder
    except (OSError, ValueError):
        pass
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file():
            old.unlink()
    say(f"drawing {cfg.prior_images} class images of {prompt!r} for prior preservation")
    pipe = base.pipe
    trained_with = pipe.scheduler
    pipe.scheduler = make_scheduler("euler", trained_with.config)
    ask = _Ask(guidance=base.settings.guidance)
    try:
        for i in range(cfg.prior_images):
            seed = cfg.seed + 1_000_000 + i  # apart from the seeds a user's own pictures use
            record = make_record(ask, base, prompt, seed, (size, size), [])
            write_labelled(render(pipe, record), record, folder, f"class-{i:04d}", LabelOptions())
    finally:
        pipe.scheduler = trained_with
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(want))
    tmp.replace(done)
    return folder
