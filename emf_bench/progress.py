"""Progress bars for work that takes more than a second (rich, on stderr)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
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


def _share_bars():
    """Bars of a share done, with an info field, elapsed and remaining time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(_description_column(), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True))


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
            self._bar = _share_bars()
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=1.0, info="")
        return self

    def update(self, step: int, progress: float, loss: float, rate: float, phase: str) -> None:
        info = f"step {step} {phase} loss {loss:.3g} {rate:.0f} img/s"
        forwarded(None, progress, info)
        if self._bar is not None:
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


# A side-by-side worker's training bars go to its parent's board (`forward_to`, `forwarding`).
_FORWARD: dict = {"queue": None, "key": None}


def forward_to(queue) -> None:
    """In a worker process: send training progress to the parent through `queue` (progress
    messages may be lost when the worker ends: they are only shown)."""
    queue.cancel_join_thread()
    _FORWARD["queue"] = queue


@contextmanager
def forwarding(key: str) -> Iterator[None]:
    """Training progress in this block is the board row `key`'s."""
    _FORWARD["key"] = key
    try:
        yield
    finally:
        _FORWARD["key"] = None


def forwarded(key: str | None, progress: float, info: str) -> None:
    """Send (row, share done, info) to the parent's board, if this is a worker (key None: the
    row of the enclosing `forwarding` block)."""
    queue, key = _FORWARD["queue"], key or _FORWARD["key"]
    if queue is not None and key is not None:
        queue.put((key, progress, info))


class ProbeBoard:
    """The parent's view of probes working side by side: a row per probe (its training's
    progress, then its evaluation) under a row for the whole stage with its time left.
    `estimates`: each probe's (training, evaluation) seconds, the rows' weights."""

    def __init__(self, names: Sequence[str], estimates: Sequence[tuple[float, float]]):
        self.weights = dict(zip(names, estimates, strict=True))
        self.done = {name: 0.0 for name in names}
        self.shown = progress_enabled()
        self._bar = None

    def __enter__(self) -> ProbeBoard:
        if self.shown:
            self._bar = _share_bars()
            self._bar.__enter__()
            total = sum(sum(w) for w in self.weights.values()) or 1.0
            self._total = self._bar.add_task("all probes", total=total, info="")
            self._rows = {name: self._bar.add_task(name, total=1.0, info="waiting")
                          for name in self.weights}
        return self

    def update(self, name: str, progress: float, info: str) -> None:
        train, evaluation = self.weights.get(name, (0.0, 0.0))
        whole = train + evaluation or 1.0
        self.done[name] = min(progress, 1.0) * train / whole
        self._show(name, self.done[name], info)

    def finish(self, name: str) -> None:
        self.done[name] = 1.0
        self._show(name, 1.0, "trained and evaluated")

    def _show(self, name: str, share: float, info: str) -> None:
        if self._bar is not None and name in self._rows:
            self._bar.update(self._rows[name], completed=share, info=info)
            done = sum(self.done[n] * sum(w) for n, w in self.weights.items())
            self._bar.update(self._total, completed=done)

    def drain(self, queue) -> None:
        """Show what the workers sent so far (and empty the queue, shown or not)."""
        import queue as queues

        while True:
            try:
                name, progress, info = queue.get_nowait()
            except (queues.Empty, OSError, EOFError):
                return
            self.update(name, progress, info)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
