"""Configuration of the synthetic shapes world."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from emf_bench.errors import EmfBenchError, unknown_name
from emf_bench.typed import check_types
from emf_bench.world.palette import COLORS, SHAPES

SPLIT_KINDS = ("phrasing", "compositional")
MAX_SIDE = 4096  # canvas and view size, in pixels
MAX_PROMPTS = 100_000  # a suite's prompts per task, and dense prompts


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a world; two equal configs give identical worlds.

    Sizes are fractions of the canvas side, so a scene renders at the training canvas and at any
    viewing size. The default is sized for a CPU probe: 32x32 pixels, three shapes, four colours.
    """

    canvas: int = 32
    shapes: tuple[str, ...] = ("circle", "square", "triangle")
    colors: tuple[str, ...] = ("red", "green", "blue", "yellow")
    min_size: float = 0.22  # smallest object extent
    max_size: float = 0.45  # largest object extent (crowded scenes get smaller ones)
    gap: float = 0.07  # background kept between objects (>= 2 px at 32)
    max_objects: int = 6
    counts: tuple[int, ...] = (2, 3, 4)  # GenEval counting uses 2, 3 and 4
    max_prompts_per_task: int = 100  # world-GenEval prompts per task (GenEval has 80 to 100)
    dense_prompts: int = 64
    dense_objects: tuple[int, int] = (3, 6)
    split: str = "phrasing"  # "compositional" also holds out meanings (unseen combinations)
    holdout: float = 0.25  # fraction of compositional meanings held out in that split
    seed: int = 0  # fixes the catalogue (dense meanings, held-out meanings), not the scenes
    view_size: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", tuple(self.shapes))
        object.__setattr__(self, "colors", tuple(self.colors))
        object.__setattr__(self, "counts", tuple(int(c) for c in self.counts))
        object.__setattr__(self, "dense_objects", tuple(int(c) for c in self.dense_objects))
        self.validate()

    @property
    def min_px(self) -> float:
        return self.min_size * self.canvas

    @staticmethod
    def grid_side(n_objects: int) -> int:
        """Objects are placed one per cell of a g x g grid, jittered inside their cells."""
        return max(1, math.ceil(math.sqrt(n_objects)))

    def max_extent(self, n_objects: int) -> float:
        """Largest object extent that fits `n_objects` with the gap kept."""
        return min(self.max_size, 1.0 / self.grid_side(n_objects) - self.gap)

    def validate(self) -> None:
        for shape in self.shapes:
            if shape not in SHAPES:
                raise unknown_name("shape", shape, SHAPES)
        for color in self.colors:
            if color not in COLORS:
                raise unknown_name("colour", color, COLORS)
        if len(set(self.shapes)) != len(self.shapes) or len(set(self.colors)) != len(self.colors):
            raise EmfBenchError("world shapes and colours must not repeat")
        if len(self.shapes) < 2:
            raise EmfBenchError("the world needs at least 2 shapes (two-object prompts)")
        if len(self.colors) < 2:
            raise EmfBenchError("the world needs at least 2 colours (colour-attribute prompts)")
        for name, value in (("canvas", self.canvas), ("view_size", self.view_size)):
            if not 8 <= value <= MAX_SIDE:
                raise EmfBenchError(f"{name} must be 8 to {MAX_SIDE} px, got {value}")
        if not 0 < self.min_size <= self.max_size <= 1:
            raise EmfBenchError(
                f"object sizes must satisfy 0 < min_size <= max_size <= 1, "
                f"got {self.min_size} and {self.max_size}")
        if not 0 <= self.gap < 0.5:
            raise EmfBenchError(f"gap must be in [0, 0.5), got {self.gap}")
        shape, need_px = max(((s, SHAPES[s].min_px) for s in self.shapes), key=lambda t: t[1])
        if self.min_px < need_px:
            need = math.ceil(need_px / self.min_size)
            raise EmfBenchError(
                f"canvas {self.canvas}x{self.canvas} is too small: the smallest objects would be "
                f"{self.min_px:.1f} px, below the {need_px:g} px a {shape} needs to be told "
                f"apart from other shapes; use a canvas of at least {need}")
        if self.max_objects < 1 or self.max_objects > 16:
            raise EmfBenchError(f"max_objects must be 1 to 16, got {self.max_objects}")
        if self.max_extent(self.max_objects) < self.min_size:
            raise EmfBenchError(
                f"{self.max_objects} objects of at least {self.min_px:.1f} px with a "
                f"{self.gap * self.canvas:.1f} px gap do not fit on a {self.canvas}x{self.canvas} "
                f"canvas; lower max_objects or raise the canvas")
        if not self.counts or min(self.counts) < 2 or max(self.counts) > self.max_objects:
            raise EmfBenchError(
                f"counting prompts need counts from 2 to max_objects={self.max_objects}, "
                f"got {list(self.counts)}")
        lo, hi = self.dense_objects
        if not 2 <= lo <= hi <= self.max_objects:
            raise EmfBenchError(
                f"dense prompts need 2 <= min objects <= max objects <= {self.max_objects}, "
                f"got {lo} to {hi}")
        if self.split not in SPLIT_KINDS:
            raise unknown_name("split", self.split, SPLIT_KINDS)
        if not 0 <= self.holdout < 1:
            raise EmfBenchError(f"holdout must be in [0, 1), got {self.holdout}")
        if not 1 <= self.max_prompts_per_task <= MAX_PROMPTS:
            raise EmfBenchError(f"max_prompts_per_task must be 1 to {MAX_PROMPTS}, got "
                                f"{self.max_prompts_per_task}")
        if not 0 <= self.dense_prompts <= MAX_PROMPTS:
            raise EmfBenchError(f"dense_prompts must be 0 to {MAX_PROMPTS}, got "
                                f"{self.dense_prompts}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "world config") -> WorldConfig:
        if not isinstance(data, dict):
            raise EmfBenchError(f"{where} must be a mapping of WorldConfig fields, got "
                                f"{type(data).__name__}")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise unknown_name(f"key in {where}:", str(key), known)
        check_types(cls, data, where)
        return cls(**data)
