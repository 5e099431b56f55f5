"""Paired caption-image pools for discriminability.

`WorldPool`: the world's training scenes and captions (default). `CocoPool`: COCO-2017 captions
(`captions_train2017.json`) and an image folder from user paths, one caption per image (the
first in the file, as the paper's protocol assumes), about 118k items. Images load lazily: only
queries and retrieved items are ever opened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError


@dataclass
class PairedPool:
    name: str
    captions: list[str]
    groups: np.ndarray  # items with equal group are positives of each other (same meaning/image)
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.captions)

    def images(self, indices: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "size": len(self), **self.params}


class WorldPool(PairedPool):
    """`size` training examples of a world: captions, scenes, renders at the canvas size."""

    def __init__(self, world, size: int = 4000, seed: int = 0):
        self.world = world
        self.examples = list(world.training_set(size, seed=seed))
        super().__init__(
            name="world", captions=[e.caption for e in self.examples],
            groups=np.array([e.meaning_id for e in self.examples]),
            params={"seed": seed, "world": world.config.to_dict()})

    def scenes(self, indices: np.ndarray) -> list:
        return [self.examples[int(i)].scene for i in indices]

    def images(self, indices: np.ndarray) -> list[np.ndarray]:
        return [self.world.render(self.examples[int(i)].scene) for i in indices]


class CocoPool(PairedPool):
    """COCO captions (one per image, the first in the file) with images from `image_dir`."""

    def __init__(self, captions_file: Path, image_dir: Path, size: int | None = None,
                 seed: int = 0):
        from emf_bench.inputs import existing_dir

        self.image_dir = existing_dir(image_dir, "COCO image folder")
        files, all_captions, ids = read_coco_captions(Path(captions_file))
        captions = [c[0] for c in all_captions]
        if size is not None and size < len(captions):
            keep = np.sort(np.random.default_rng(seed).choice(len(captions), size, replace=False))
            files = [files[i] for i in keep]
            captions = [captions[i] for i in keep]
            ids = [ids[i] for i in keep]
        self.files, self.image_ids = files, ids
        super().__init__(
            name="coco", captions=captions, groups=np.array(ids),
            params={"captions_file": str(captions_file), "image_dir": str(image_dir),
                    "caption_per_image": "first", "subsample_seed": seed if size else None})

    def images(self, indices: np.ndarray) -> list[np.ndarray]:
        from emf_bench.images import read_image

        out = []
        for i in indices:
            try:
                out.append(read_image(self.image_dir / self.files[int(i)]))
            except EmfBenchError as err:
                raise EmfBenchError(f"COCO image id {self.image_ids[int(i)]}: {err}") from None
        return out


def read_coco_captions(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """(file names, captions in file order, image id) per image that has a caption, in the
    order images first get one."""
    from emf_bench.inputs import existing_file

    try:
        data = json.loads(existing_file(path, "COCO captions file").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EmfBenchError(f"cannot read COCO captions file {path}: {err}") from None
    for key in ("images", "annotations"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise EmfBenchError(f"COCO captions file {path} has no {key!r} list")
    names: dict[int, str] = {}
    for n, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise EmfBenchError(f"{path}: images[{n}] lacks 'id' or 'file_name'")
        names[image["id"]] = image["file_name"]
    captions: dict[int, list[str]] = {}
    for n, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or "caption" not in ann:
            raise EmfBenchError(f"{path}: annotations[{n}] lacks 'image_id' or 'caption'")
        if ann["image_id"] not in names:
            raise EmfBenchError(f"{path}: annotations[{n}] refers to unknown image id "
                                f"{ann['image_id']}")
        text = " ".join(str(ann["caption"]).split())
        if text:
            captions.setdefault(ann["image_id"], []).append(text)
    if not captions:
        raise EmfBenchError(f"COCO captions file {path} has no captions")
    ids = list(captions)
    return [names[i] for i in ids], [captions[i] for i in ids], ids
