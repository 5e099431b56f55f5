"""The world's exact detector: any RGB image to GenEval-style detections.

Pixels take the nearest palette colour (the world's colours and the background) when they are
close enough to it; each colour's 8-connected components above a minimum area are candidate
objects; each is classified by fitting every shape's template (initialised from the component's
area and centroid, refined by a small search) and keeping the best intersection-over-union,
which is also the detection score. On clean renders every object fits its own template exactly
(score 1.0); on generated images the score says how much the blob looks like the shape.

This is not GenEval's detector (Mask2Former); results computed with it are labelled
`world-exact` wherever they appear.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from scipy import ndimage

from emf_bench.errors import EmfBenchError
from emf_bench.spatial import Detection, box_from_mask
from emf_bench.world.config import WorldConfig
from emf_bench.world.palette import BACKGROUND, CENTROID_OFFSET, COLORS, SHAPES, shape_mask

# Candidate placements around the moment estimate: size factors and centre shifts in pixels.
_SIZE_STEPS = (-0.08, -0.04, 0.0, 0.04, 0.08)
_SHIFT_STEPS = (-0.3, 0.0, 0.3)
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def as_rgb_array(image: Any, where: str = "image") -> np.ndarray:
    """An (H, W, 3) uint8 array from a PIL image or an array (gray, RGB or RGBA)."""
    if hasattr(image, "convert"):  # PIL
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        raise EmfBenchError(f"{where}: expected an RGB image, got an array of shape {array.shape}")
    array = array[:, :, :3]
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).round().astype(np.uint8)
    return array


class ExactDetector:
    """Detections of the world's shapes and colours (name `world-exact`, not official)."""

    name = "world-exact"
    official = False

    def __init__(self, config: WorldConfig, color_tolerance: float = 0.42,
                 min_area_fraction: float = 0.35):
        self.config = config
        self.colors = list(config.colors)
        self.palette = np.array([COLORS[c] for c in self.colors] + [BACKGROUND], dtype=np.float32)
        gaps = np.linalg.norm(self.palette[:, None] - self.palette[None], axis=-1)
        # A pixel belongs to a colour only when it is clearly nearer to it than to any other.
        self.max_distance = color_tolerance * float(gaps[gaps > 0].min())
        smallest_area = min(SHAPES[s].area for s in config.shapes) * config.min_size**2
        self.min_area_fraction = min_area_fraction * smallest_area  # of the image area
        # Objects come in a range of sizes: a blob far outside it is not one (a blank black
        # canvas is not a black square, nor a 4 px block of noise a small one).
        self.min_extent_fraction = 0.75 * config.min_size
        self.max_extent_fraction = 1.5 * config.max_size

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "official": False, "max_color_distance": self.max_distance,
                "shapes": list(self.config.shapes), "colors": self.colors}

    def color_map(self, image: np.ndarray) -> np.ndarray:
        """(H, W) int: index into the world's colours, len(colors) for background, -1 unclear."""
        pixels = image.astype(np.float32)
        dist = np.linalg.norm(pixels[:, :, None, :] - self.palette[None, None], axis=-1)
        nearest = dist.argmin(axis=-1)
        unclear = np.take_along_axis(dist, nearest[..., None], axis=-1)[..., 0] > self.max_distance
        nearest[unclear] = -1
        return nearest

    def detect(self, image: Any) -> list[Detection]:
        image = as_rgb_array(image)
        height, width = image.shape[:2]
        side = min(height, width)
        min_area = max(4.0, self.min_area_fraction * side * side)
        min_extent = self.min_extent_fraction * side
        max_extent = self.max_extent_fraction * side
        labels = self.color_map(image)
        detections = []
        for k, color in enumerate(self.colors):
            components, n = ndimage.label(labels == k, structure=_EIGHT_CONNECTED)
            if n == 0:
                continue
            for index, window in enumerate(ndimage.find_objects(components), start=1):
                local = components[window] == index
                extent = max(local.shape)
                if local.sum() < min_area or not min_extent <= extent <= max_extent:
                    continue
                shape, score = self.fit_shape(local)
                mask = np.zeros((height, width), dtype=bool)
                mask[window] = local
                box = box_from_mask(mask)
                detections.append(Detection(shape, box, score, mask, color))
        detections.sort(key=lambda d: -d.score)
        return detections

    def fit_shape(self, component: np.ndarray) -> tuple[str, float]:
        """The best-fitting shape of a component (a tight bool crop) and its IoU."""
        area = float(component.sum())
        pad = int(np.ceil(0.25 * np.sqrt(area))) + 2
        mask = np.pad(component, pad)
        ys, xs = np.nonzero(mask)
        my, mx = ys.mean() + 0.5, xs.mean() + 0.5
        cy_grid = (np.arange(mask.shape[0]) + 0.5)[None, :, None]
        cx_grid = (np.arange(mask.shape[1]) + 0.5)[None, None, :]
        best_shape, best_iou = self.config.shapes[0], -1.0
        for shape in self.config.shapes:
            s0 = np.sqrt(area / SHAPES[shape].area)
            candidates = np.array([
                (mx + dx, my + dy - CENTROID_OFFSET.get(shape, 0.0) * s0 * (1 + ds), s0 * (1 + ds))
                for ds, dx, dy in itertools.product(_SIZE_STEPS, _SHIFT_STEPS, _SHIFT_STEPS)
            ])
            cx, cy, size = (candidates[:, i, None, None] for i in range(3))
            templates = shape_mask(shape, cx_grid, cy_grid, cx, cy, size)  # (C, H, W)
            inter = (templates & mask).sum(axis=(1, 2))
            union = (templates | mask).sum(axis=(1, 2))
            iou = float((inter / np.maximum(union, 1)).max())
            if iou > best_iou:
                best_shape, best_iou = shape, iou
        return best_shape, best_iou
