"""The official image layouts of GenEval and DPG-Bench, so images move between tools unchanged.

GenEval: `<root>/<index:05>/metadata.jsonl` holds that prompt's metadata line as one JSON object
and `<root>/<index:05>/samples/<n:05>.png` its images (GenEval's generation scripts write 4;
reading, only names matching `\\d+.png` count, as in GenEval, and other files are reported,
never silently skipped). DPG-Bench: `<root>/<item_id>.png` (reading, also .jpg, .jpeg, .webp),
a 2x2 grid of four R x R tiles with no padding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError
from emf_bench.storage import atomic_save_png, atomic_write_text

_SAMPLE = re.compile(r"^\d+\.png$")
DPG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")


def geneval_prompt_dir(root: Path, index: int) -> Path:
    return Path(root) / f"{index:05d}"


def write_geneval_prompt(root: Path, index: int, metadata: dict[str, Any],
                         images: Sequence[np.ndarray]) -> Path:
    """Write one prompt's folder: metadata.jsonl and samples/00000.png, 00001.png, ..."""
    folder = geneval_prompt_dir(root, index)
    atomic_write_text(folder / "metadata.jsonl", json.dumps(metadata) + "\n")
    for n, image in enumerate(images):
        atomic_save_png(folder / "samples" / f"{n:05d}.png", image)
    return folder


def dpg_grid(tiles: Sequence[np.ndarray]) -> np.ndarray:
    """Four equal square (R, R, 3) tiles as DPG-Bench's (2R, 2R, 3) grid, row-major, no padding."""
    if len(tiles) != 4:
        raise EmfBenchError(f"a DPG-Bench grid needs 4 tiles, got {len(tiles)}")
    shape = tiles[0].shape
    if any(t.shape != shape for t in tiles) or len(shape) != 3 or shape[0] != shape[1]:
        raise EmfBenchError(
            f"DPG-Bench tiles must be equal squares, got shapes {[t.shape for t in tiles]}")
    return np.concatenate([np.concatenate(tiles[:2], axis=1),
                           np.concatenate(tiles[2:], axis=1)], axis=0)


def write_dpg_grid(root: Path, item_id: str, tiles: Sequence[np.ndarray]) -> Path:
    return atomic_save_png(Path(root) / f"{item_id}.png", dpg_grid(tiles))


def write_dpg_questions(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    """Question rows as a DPG-Bench CSV (columns in the official order)."""
    import csv
    import io

    from emf_bench.world.questions import QUESTION_COLUMNS

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=QUESTION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def geneval_sample_files(root: Path, index: int, row: dict[str, Any]) -> list[Path]:
    """Sample files of prompt `index` under `root`, its metadata checked against `row`."""
    folder = geneval_prompt_dir(root, index)
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


def dpg_grid_file(root: Path, item_id: str) -> Path:
    """The grid image of DPG item `item_id` under `root`."""
    for ext in DPG_EXTENSIONS:
        if (Path(root) / f"{item_id}{ext}").exists():
            return Path(root) / f"{item_id}{ext}"
    raise EmfBenchError(f"{root}: no grid image for DPG item {item_id!r} "
                        f"({item_id}.png expected)")
