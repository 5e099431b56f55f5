"""Detections and the GenEval relative-position rule, shared by the world and the evaluators.

Boxes are `(x1, y1, x2, y2)` in pixels, image y growing downward, `x2`/`y2` exclusive (a one-pixel
object at column 3 spans 3 to 4), the convention of mmdet and of GenEval's boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

Box = tuple[float, float, float, float]

RELATIONS = ("left of", "right of", "above", "below")
# "A right of B" is "B left of A" under GenEval's rule (it is antisymmetric), and so on.
INVERSE_RELATION = {
    "left of": "right of", "right of": "left of", "above": "below", "below": "above",
}

# GenEval's POSITION_THRESHOLD: the fraction of the two boxes' sizes an offset must exceed.
POSITION_THRESHOLD = 0.1


@dataclass
class Detection:
    """One detected object: a class name, a box, a confidence, optionally a mask and a colour.

    `color` is filled by detectors that know it exactly (the synthetic world); GenEval's colour
    classifier fills it otherwise.
    """

    label: str
    box: Box
    score: float
    mask: np.ndarray | None = None  # (H, W) bool
    color: str | None = None

    def to_dict(self) -> dict:
        """Plain data for result rows (no mask)."""
        out = {"label": self.label, "box": [round(float(v), 2) for v in self.box],
               "score": round(float(self.score), 4)}
        if self.color is not None:
            out["color"] = self.color
        return out


def box_from_mask(mask: np.ndarray) -> Box | None:
    """Tight `(x1, y1, x2, y2)` box of a boolean mask; None for an empty mask."""
    import numpy as np

    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def revised_direction(
    box_a: Box, box_b: Box, threshold: float = POSITION_THRESHOLD
) -> tuple[float, float] | None:
    """GenEval's (dx, dy) of box A relative to box B, or None when no relation can hold.

    offset = centre_A - centre_B; per axis the offset shrinks by `threshold * (size_A + size_B)`
    (not below zero); if nothing is left there is no relation; otherwise the revised offset is
    divided by the length of the raw offset.
    """
    ax1, ay1, ax2, ay2 = box_a
    bx1, by1, bx2, by2 = box_b
    offset = ((ax1 + ax2) / 2 - (bx1 + bx2) / 2, (ay1 + ay2) / 2 - (by1 + by2) / 2)
    dims = (abs(ax2 - ax1) + abs(bx2 - bx1), abs(ay2 - ay1) + abs(by2 - by1))
    revised = [max(abs(o) - threshold * d, 0.0) * math.copysign(1.0, o) if o else 0.0
               for o, d in zip(offset, dims, strict=True)]
    if all(abs(r) < 1e-3 for r in revised):
        return None
    norm = math.hypot(*offset)
    return revised[0] / norm, revised[1] / norm


def relative_position(box_a: Box, box_b: Box, threshold: float = POSITION_THRESHOLD) -> set[str]:
    """Relations of box A to box B by GenEval's rule (`evaluate_images.py`).

    Each of left of (dx < -0.5), right of (dx > 0.5), above (dy < -0.5), below (dy > 0.5) that
    holds is returned; several may hold, or none.
    """
    direction = revised_direction(box_a, box_b, threshold)
    if direction is None:
        return set()
    dx, dy = direction
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def relation_margin(box_a: Box, box_b: Box, relation: str,
                    threshold: float = POSITION_THRESHOLD) -> float:
    """How far inside GenEval's rule `A relation B` holds (> 0 holds, <= 0 fails).

    0.1 means the relation would survive its direction component moving 0.1 towards the 0.5
    cut-off. The world places objects with slack so a relation true at the training canvas stays
    true at other render sizes.
    """
    direction = revised_direction(box_a, box_b, threshold)
    if direction is None:
        return -1.0
    dx, dy = direction
    component = {"left of": -dx, "right of": dx, "above": -dy, "below": dy}[relation]
    return component - 0.5
