"""One kind of rich progress bar, with count and ETA, for anything that takes more than a
second: generate, encounter, prepare, audit and train all draw theirs here."""

from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Bars:
    """`bars(label, done, total, **fields)`: one bar per label, made on its first update."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def __call__(self, label: str, done: int, total: int | None, **fields) -> None:
        if self.progress is None:
            return
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total, completed=done, **fields)
        self.progress.update(self.tasks[label], completed=done, total=total, **fields)


def on_terminal() -> bool:
    return Console(stderr=True).is_terminal


@contextmanager
def progress_bars(
    unit: str,
    quiet: bool = False,
    *,
    fields: str = "",
    elapsed: bool = False,
    transient: bool = True,
):
    """Yield a `Bars` drawing on stderr: label, bar, done/total `unit`, the `fields` template
    (e.g. "loss {task.fields[loss]}"), elapsed time when asked, ETA. Draws nothing when quiet
    or when stderr is not a terminal."""
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield Bars(None)
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
    ]
    if fields:
        columns.append(TextColumn(fields))
    if elapsed:
        columns.append(TimeElapsedColumn())
    columns += [TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=transient) as progress:
        yield Bars(progress)


@contextmanager
def step_progress(description: str, quiet: bool = False, unit: str = "steps", after: float = 0.0):
    """Yield on_step(done, total) for one bar (of denoising steps by default). `after`: seconds
    before the bar appears, so short runs stay silent."""
    start = time.monotonic()
    with progress_bars(unit, quiet) as bars:

        def on_step(done: int, total: int) -> None:
            bars(description, done, total, visible=time.monotonic() - start >= after)

        yield on_step
