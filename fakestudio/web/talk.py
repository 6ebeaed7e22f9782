"""The talk: the story of a fake, and the quiz pairs, from `--talk DIR`."""

from __future__ import annotations

from pathlib import Path

from fakestudio.errors import UserError


def check_talk_dir(folder: Path) -> None:
    if not folder.is_dir():
        raise UserError(f"--talk {folder}: no such folder")
