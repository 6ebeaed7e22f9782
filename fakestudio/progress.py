"""One rich progress bar with ETA for anything that takes more than a second."""

from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def step_progress(description: str, quiet: bool = False, unit: str = "steps", after: float = 0.0):
    """Yield on_step(done, total); draws on stderr, nothing when quiet or not a terminal.

    `after`: seconds to wait before the bar appears (short runs stay silent)."""
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None, visible=after <= 0)
        start = time.monotonic()

        def on_step(done: int, total: int) -> None:
            visible = time.monotonic() - start >= after
            progress.update(task, completed=done, total=total, visible=visible)

        yield on_step
