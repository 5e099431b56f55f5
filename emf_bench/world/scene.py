"""Scenes: objects placed on the canvas so that they show a meaning, and their rendering.

Placement puts one object per cell of a g x g grid (g = ceil(sqrt(n))), jittered inside its cell
and sized so the configured gap of background always separates objects: no overlaps, and every
object is its own connected component for the detector. Relations are checked with GenEval's
rule on the rasterised boxes, with slack, so they also hold at other render sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from emf_bench.errors import EmfBenchError
from emf_bench.spatial import Box, box_from_mask, relation_margin
from emf_bench.world.config import WorldConfig
from emf_bench.world.meaning import Meaning
from emf_bench.world.palette import BACKGROUND, COLORS, shape_mask

# A relation must hold with this much room under GenEval's rule at the training canvas.
RELATION_SLACK = 0.05
MAX_PLACEMENT_ATTEMPTS = 500


@dataclass(frozen=True)
class SceneObject:
    """One object; centre (x, y) and extent `size` as fractions of the canvas side."""

    shape: str
    color: str
    x: float
    y: float
    size: float
    group: int = 0  # index of the meaning's group it belongs to


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]

    def to_dict(self) -> dict:
        return {"objects": [{k: (round(v, 5) if isinstance(v, float) else v)
                             for k, v in asdict(o).items()} for o in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        return cls(tuple(SceneObject(**o) for o in data["objects"]))


def _pixel_centres(size: int) -> np.ndarray:
    return np.arange(size, dtype=np.float64) + 0.5


def object_mask(obj: SceneObject, size: int) -> np.ndarray:
    """(size, size) bool mask of the object rendered on a size x size canvas."""
    c = _pixel_centres(size)
    return shape_mask(obj.shape, c[None, :], c[:, None], obj.x * size, obj.y * size,
                      obj.size * size)


def object_boxes(scene: Scene, size: int) -> list[Box]:
    boxes = []
    for obj in scene.objects:
        box = box_from_mask(object_mask(obj, size))
        if box is None:  # cannot happen for sizes the config allows; guard against hand-made scenes
            raise EmfBenchError(f"object {obj} is invisible at {size}x{size}")
        boxes.append(box)
    return boxes


def render(scene: Scene, size: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB image: hard-edged shapes on the gray background."""
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for obj in scene.objects:
        image[object_mask(obj, size)] = COLORS[obj.color]
    return image


def relations_hold(scene: Scene, meaning: Meaning, size: int,
                   slack: float = RELATION_SLACK) -> bool:
    """Every relation of `meaning` holds between every pair of its groups' objects."""
    if not meaning.relations:
        return True
    boxes = object_boxes(scene, size)
    by_group: dict[int, list[Box]] = {}
    for obj, box in zip(scene.objects, boxes, strict=True):
        by_group.setdefault(obj.group, []).append(box)
    return all(
        relation_margin(a, b, rel.predicate) > slack
        for rel in meaning.relations
        for a in by_group.get(rel.subject, [])
        for b in by_group.get(rel.reference, [])
    )


def sample_scene(meaning: Meaning, config: WorldConfig, rng: np.random.Generator) -> Scene:
    """A random scene showing exactly `meaning`: its objects, nothing else.

    Colours the meaning leaves open are drawn per object from the world's colours.
    Raises EmfBenchError for a request no scene can satisfy.
    """
    try:
        meaning.validate()
    except ValueError as err:
        raise EmfBenchError(f"impossible scene request ({meaning.key}): {err}") from err
    for g in meaning.groups:
        if g.shape not in config.shapes or (g.color is not None and g.color not in config.colors):
            raise EmfBenchError(
                f"impossible scene request ({meaning.key}): {g.describe()} is not in this world "
                f"(shapes {', '.join(config.shapes)}; colours {', '.join(config.colors)})")
    n = meaning.n_objects
    if n > config.max_objects:
        raise EmfBenchError(
            f"impossible scene request ({meaning.key}): {n} objects, but this world places at "
            f"most {config.max_objects} on a {config.canvas}x{config.canvas} canvas")
    kinds = [(gi, g.shape, g.color) for gi, g in enumerate(meaning.groups) for _ in range(g.count)]
    side = config.grid_side(n)
    cell = 1.0 / side
    hi = config.max_extent(n)
    for _ in range(MAX_PLACEMENT_ATTEMPTS):
        cells = rng.permutation(side * side)[:n]
        sizes = rng.uniform(config.min_size, hi, size=n)
        objects = []
        for (gi, shape, color), c, s in zip(kinds, cells, sizes, strict=True):
            row, col = divmod(int(c), side)
            margin = s / 2 + config.gap / 2
            x = col * cell + rng.uniform(margin, cell - margin)
            y = row * cell + rng.uniform(margin, cell - margin)
            if color is None:
                color = config.colors[int(rng.integers(len(config.colors)))]
            objects.append(SceneObject(shape, color, float(x), float(y), float(s), gi))
        scene = Scene(tuple(objects))
        if relations_hold(scene, meaning, config.canvas):
            return scene
    raise EmfBenchError(
        f"impossible scene request ({meaning.key}): no placement of {n} objects on a "
        f"{config.canvas}x{config.canvas} canvas satisfies its relations")
