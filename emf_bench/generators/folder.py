"""Pre-generated images in the official layouts, from any generator, as a drop-in generator.

GenEval: `<root>/<index:05>/metadata.jsonl` + `samples/<n>.png` (only names matching `\\d+.png`
count, as in GenEval; other files are reported, never silently skipped). DPG-Bench:
`<root>/<item_id>.<png|jpg|jpeg|webp>`, a 2x2 grid. A `{steps}` in the path selects one folder
per step count (`runs/sana-{steps}step`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError

_SAMPLE = re.compile(r"^\d+\.png$")
DPG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")


def read_image(path: Path) -> np.ndarray:
    """An (H, W, 3) uint8 array; EXIF orientation applied (as GenEval does)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except FileNotFoundError:
        raise EmfBenchError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise EmfBenchError(f"image {path} cannot be decoded ({err})") from None


class FolderGenerator:
    """Images someone else generated, read from an official layout (`official` stays False:
    the images are whatever the user's generator made; the label is about the scorer)."""

    kind = "folder"
    official = False

    def __init__(self, root: str | Path, name: str | None = None):
        self.pattern = str(root)
        self.name = name or f"images:{Path(self.pattern.split('{steps}')[0].rstrip('/-_')).name}"
        self.per_steps = "{steps}" in self.pattern

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "folder", "official": False, "path": self.pattern}

    def root(self, steps: int) -> Path:
        root = Path(self.pattern.replace("{steps}", str(steps)))
        if not root.is_dir():
            raise EmfBenchError(f"image folder {root} does not exist")
        return root

    def geneval_samples(self, steps: int, index: int, row: dict[str, Any]) -> list[Path]:
        """Sample files of prompt `index`, its metadata checked against the suite's row."""
        folder = self.root(steps) / f"{index:05d}"
        meta = folder / "metadata.jsonl"
        if not meta.exists():
            raise EmfBenchError(f"{folder}: missing metadata.jsonl (GenEval layout: "
                                f"<root>/<index:05>/metadata.jsonl and samples/<n>.png)")
        try:
            theirs = json.loads(meta.read_text(encoding="utf-8").splitlines()[0])
        except (ValueError, IndexError, OSError) as err:
            raise EmfBenchError(f"corrupt {meta}: {err}") from None
        if theirs.get("prompt") != row["prompt"]:
            raise EmfBenchError(f"{meta} is for prompt {theirs.get('prompt')!r}, the benchmark's "
                                f"prompt {index} is {row['prompt']!r}: images and metadata "
                                f"do not match")
        samples = folder / "samples"
        files = sorted(samples.iterdir()) if samples.is_dir() else []
        found = [f for f in files if _SAMPLE.match(f.name)]
        if not found:
            others = [f.name for f in files if f.is_file()]
            raise EmfBenchError(
                f"{samples}: no images named <n>.png" + (
                    f" (found {', '.join(others[:3])}{'...' if len(others) > 3 else ''}: GenEval "
                    f"counts only PNG files named by number)" if others else ""))
        return sorted(found, key=lambda f: int(f.stem))

    def dpg_grid(self, steps: int, item_id: str) -> Path:
        root = self.root(steps)
        for ext in DPG_EXTENSIONS:
            if (root / f"{item_id}{ext}").exists():
                return root / f"{item_id}{ext}"
        raise EmfBenchError(f"{root}: no grid image for DPG item {item_id!r} "
                            f"({item_id}.png expected)")
