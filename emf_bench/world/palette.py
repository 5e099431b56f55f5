"""Colours and shapes of the synthetic world.

Colours are GenEval's ten colour names (in GenEval's order) with RGB values chosen far apart
(at least 90 apart in RGB), on a mid-gray background that is none of them, so black and white
objects stay visible. Shapes are rasterised analytically at pixel centres, so the same scene
renders at the training canvas and at any larger viewing size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# GenEval's colour vocabulary, in its order.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "orange": (250, 130, 0),
    "yellow": (240, 240, 40),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "purple": (130, 30, 180),
    "pink": (255, 130, 210),
    "brown": (115, 65, 20),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
}
BACKGROUND: tuple[int, int, int] = (128, 128, 128)
BACKGROUND_NAME = "gray"

def _circle(dx: np.ndarray, dy: np.ndarray, s: float) -> np.ndarray:
    return dx * dx + dy * dy <= (s / 2) ** 2


def _square(dx: np.ndarray, dy: np.ndarray, s: float) -> np.ndarray:
    return (np.abs(dx) <= s / 2) & (np.abs(dy) <= s / 2)


def _triangle(dx: np.ndarray, dy: np.ndarray, s: float) -> np.ndarray:
    # Apex up, base down, as tall as it is wide: half-width grows from 0 at the apex to s/2.
    depth = dy + s / 2
    return (depth >= 0) & (dy <= s / 2) & (np.abs(dx) <= depth / 2)


def _diamond(dx: np.ndarray, dy: np.ndarray, s: float) -> np.ndarray:
    return np.abs(dx) + np.abs(dy) <= s / 2


def _cross(dx: np.ndarray, dy: np.ndarray, s: float) -> np.ndarray:
    ax, ay = np.abs(dx), np.abs(dy)
    return ((ax <= s / 6) & (ay <= s / 2)) | ((ay <= s / 6) & (ax <= s / 2))


def _ring(dx: np.ndarray, dy: np.ndarray, s: float) -> np.ndarray:
    r2 = dx * dx + dy * dy
    return (r2 <= (s / 2) ** 2) & (r2 > (0.22 * s) ** 2)


@dataclass(frozen=True)
class ShapeSpec:
    mask: Callable[[np.ndarray, np.ndarray, float], np.ndarray]  # offsets from centre, size
    area: float  # area as a fraction of size**2
    plural: str
    # Below this extent (pixels) the rasterised shape is indistinguishable from another one
    # (measured: a 7 px diamond rasterises exactly like a 6 px circle).
    min_px: float = 6.0


SHAPES: dict[str, ShapeSpec] = {
    "circle": ShapeSpec(_circle, np.pi / 4, "circles"),
    "square": ShapeSpec(_square, 1.0, "squares"),
    "triangle": ShapeSpec(_triangle, 0.5, "triangles"),
    "diamond": ShapeSpec(_diamond, 0.5, "diamonds", min_px=9.0),
    "cross": ShapeSpec(_cross, 5 / 9, "crosses", min_px=7.0),
    "ring": ShapeSpec(_ring, np.pi * (0.25 - 0.22**2), "rings", min_px=10.5),
}
PLURALS = {name: spec.plural for name, spec in SHAPES.items()}
SINGULARS = {plural: name for name, plural in PLURALS.items()}

# The shape's centroid below its box centre, as a fraction of size (the triangle's mass is low).
CENTROID_OFFSET = {"triangle": 1 / 6}


def shape_mask(shape: str, xs: np.ndarray, ys: np.ndarray, cx, cy, size) -> np.ndarray:
    """Pixels whose centres fall inside `shape` centred at (cx, cy) with extent `size`.

    `xs`, `ys` are pixel-centre coordinates (broadcastable); cx, cy, size may be arrays that
    broadcast against them, so many candidate placements rasterise in one call.
    """
    return SHAPES[shape].mask(xs - cx, ys - cy, size)


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
