"""Progress bars for work that takes more than a second (rich, on stderr)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars only where someone watches: a terminal on stderr, no EMF_BENCH_QUIET, rank 0."""
    return (sys.stderr.isatty() and not os.environ.get("EMF_BENCH_QUIET")
            and os.environ.get("RANK", "0") == "0")


def _description_column():
    """Bold, and printed as it is: descriptions hold encoder and model names, not markup."""
    from rich.progress import TextColumn

    return TextColumn("{task.description}", style="bold", markup=False)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate `items` with a progress bar (elapsed, rate and remaining time)."""
    if not progress_enabled():
        yield from items
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (_description_column(), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


class StepProgress:
    """A training progress bar: share of the budget done, loss and images/s."""

    def __init__(self, description: str, total_steps: float | None = None,
                 after: float | None = None):
        """`after`: the estimated seconds of work after this bar (a study's other probes and
        its evaluation), shown as the whole study's time left."""
        self.description, self.total_steps, self.after = description, total_steps, after
        self._bar = None

    def __enter__(self) -> StepProgress:
        if progress_enabled():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(_description_column(), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}%"),
                                 TextColumn("{task.fields[info]}", markup=False),
                                 TimeElapsedColumn(),
                                 TextColumn("eta"), TimeRemainingColumn(),
                                 console=Console(stderr=True))
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=1.0, info="")
        return self

    def update(self, step: int, progress: float, loss: float, rate: float, phase: str) -> None:
        if self._bar is not None:
            info = f"step {step} {phase} loss {loss:.3g} {rate:.0f} img/s"
            left = self._bar.tasks[0].time_remaining
            if self.after is not None and left is not None:
                info += f" | study ~{(left + self.after) / 60:.0f} min left"
            self._bar.update(self._task, completed=progress, info=info)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def stage(message: str) -> None:
    """A one-line heading for a stage of a long command (stderr; off where bars are off, except
    in logs, where it is the only sign of life: shown unless EMF_BENCH_QUIET)."""
    if not os.environ.get("EMF_BENCH_QUIET") and os.environ.get("RANK", "0") == "0":
        print(f"== {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """A result the user must see (images that failed, rows reused, files rewritten): stderr,
    rank 0, shown even with EMF_BENCH_QUIET."""
    if os.environ.get("RANK", "0") == "0":
        print(f"note: {message}", file=sys.stderr, flush=True)
