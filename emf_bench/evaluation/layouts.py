"""The official image layouts of GenEval and DPG-Bench, so images move between tools unchanged.

GenEval: `<root>/<index:05>/metadata.jsonl` holds that prompt's metadata line as one JSON object
and `<root>/<index:05>/samples/<n:05>.png` its images (GenEval's generation scripts write 4).
DPG-Bench: `<root>/<item_id>.png`, a 2x2 grid of four R x R tiles with no padding.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError
from emf_bench.storage import atomic_save_png, atomic_write_text


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
