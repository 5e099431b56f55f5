"""Generators the evaluation sweeps over steps: probes, image folders, diffusers pipelines.

A generator turns prompts into images at a given number of sampling steps; one seed per image
makes every image reproducible on its own, whatever batch it was generated in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Generator(Protocol):
    name: str
    official: bool

    def generate(self, prompts: Sequence[str], steps: int, seeds: Sequence[int],
                 guidance: float = 1.0) -> list[np.ndarray]:
        """One (H, W, 3) uint8 image per prompt (prompts may repeat), seeded per image."""
        ...
