"""The one error type for user mistakes.

Anything a user can fix (a missing file, an unknown name, a canvas too small for a scene) raises
`EmfBenchError` with a message that names what and where. The CLI prints that message as one
line and exits with code 2; every other exception is an internal failure (exit 1, traceback).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable


class EmfBenchError(Exception):
    """A user mistake; `str(err)` is the one line the CLI prints."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> EmfBenchError:
    """An error for an unknown `name`, suggesting the closest known names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        hint = "known: " + ", ".join(known) if known else f"no {kind}s are registered"
    return EmfBenchError(f"unknown {kind} {name!r}; {hint}")


def in_range(what: str, value: float, low: float, high: float = math.inf, *,
             low_open: bool = False) -> float:
    """`value` when it is a number in [low, high] ((low, high] with `low_open`), else one clear
    error; NaN is never in range."""
    if not ((low < value if low_open else low <= value) and value <= high):
        if high == math.inf:
            bounds = f"{'more than' if low_open else 'at least'} {low:g}"
        else:
            bounds = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        raise EmfBenchError(f"{what} must be {bounds}, got {value}")
    return value


def check_guidance(value: float, what: str = "--guidance") -> float:
    """A classifier-free guidance scale (1: none), as every command accepts it."""
    return in_range(what, value, 0, 100, low_open=True)
