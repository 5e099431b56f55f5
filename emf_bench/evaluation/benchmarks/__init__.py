"""Benchmarks behind one small interface, registered by name like the encoders.

A benchmark knows its prompts, the official image layout its images are saved in and read from,
how one unit of images is scored (a GenEval image, a DPG-Bench 2x2 grid), how result rows are
summarised, and which scoring backend it needs. The step sweep (`evaluation.runner`) knows none
of them by name: a new benchmark is one new module and one line in `BENCHMARKS` (or an entry
point in the group `emf_bench.benchmarks`).

    Benchmark
      name, source, needs                 registry name, where the prompts came from,
                                          "detector" or "vqa"
      len(b)                              prompts
      select(tags, limit)                 a part of it (tasks, first N prompts), which says so
      item(index)                         a prompt's definition (what its rows depend on)
      plan(indices, per_prompt, seed)     the units a generator makes, with prompts and seeds
      compose(images)                     one unit's generated images -> the image scored
      save(images_dir, units)             the official layout, drop-in for official scripts
      read(root, indices)                 units from a folder in that layout (pre-generated),
                                          each with its file (the sweep reads and decodes it)
      score(unit, scorer, rules, base)    result rows of one unit
      summarize(rows, scorer)             the summary; the caller's rows are not changed
      metrics(summary)                    name -> value, for the long-form table
      table(summaries)                    columns and rows for the terminal
      make_scorer(options, world)         the default or chosen backend for this benchmark
      breakdowns (optional)               (metric prefix, parts, value) labels: the report
                                          plots those metrics by part (GenEval 2: skill, atoms)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from emf_bench.errors import EmfBenchError, unknown_name

if TYPE_CHECKING:
    import numpy as np

    from emf_bench.evaluation.detectors import Detector
    from emf_bench.evaluation.vqa import VQA

BENCHMARKS: dict[str, str] = {
    "geneval": "emf_bench.evaluation.benchmarks.geneval:GenEvalBenchmark",
    "world-geneval": "emf_bench.evaluation.benchmarks.geneval:GenEvalBenchmark",
    "dpg": "emf_bench.evaluation.benchmarks.dpg:DPGBenchmark",
    "world-dpg": "emf_bench.evaluation.benchmarks.dpg:DPGBenchmark",
    "geneval2": "emf_bench.evaluation.benchmarks.geneval2:GenEval2Benchmark",
    "world-geneval2": "emf_bench.evaluation.benchmarks.geneval2:GenEval2Benchmark",
}
BENCHMARK_GROUP = "emf_bench.benchmarks"


@dataclass
class Sources:
    """Where a benchmark's official files are (None: not given), and the world's settings."""

    geneval_metadata: Path | None = None
    dpg_prompts: Path | None = None
    dpg_csv: Path | None = None
    world: dict[str, Any] = field(default_factory=dict)
    official_compat: bool = False
    geneval2_data: Path | None = None


@dataclass
class BackendOptions:
    """The scoring backends a user chose (None: each benchmark's default)."""

    detector: str | None = None
    detector_model: str | None = None
    color_model: str = "openai/clip-vit-large-patch14"
    mmdet_config: Path | None = None
    mmdet_checkpoint: Path | None = None
    vqa: str | None = None
    strict: bool = True
    device: str | None = "cpu"


@dataclass
class Scorer:
    """What turns an image into a score: a detector and colour classifier (GenEval) or a VQA
    model (DPG-Bench), with their labels."""

    detector: Detector | None = None
    colors: Callable | None = None  # None: colours carried by the detections (world-exact)
    vqa: VQA | None = None
    strict_world: bool = False  # also fail GenEval images with extra objects (world extra)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.detector is not None:
            out["detector"] = self.detector.describe()
            out["colors"] = self.colors.describe() if self.colors is not None else \
                {"name": "detector colours", "official": False}
            out["official"] = bool(self.detector.official)
        if self.vqa is not None:
            out["vqa"] = self.vqa.describe()
            out["official"] = bool(self.vqa.official)
        return out


@dataclass
class Unit:
    """What a benchmark scores as one: a GenEval image, a DPG-Bench grid of four tiles."""

    index: int  # the prompt's index in the benchmark
    sample: int  # the unit's number within its prompt
    prompts: list[str]  # one per image a generator makes for the unit
    seeds: list[int | None]  # one per image; None for pre-generated images
    path: str  # relative to the images folder
    image: np.ndarray | EmfBenchError | None = None  # an error: the file failed to load
    file: Path | None = None  # a pre-generated image's file
    data: bytes | None = None  # its bytes, read by the sweep, until decoded
    key: str = ""  # content key of everything the unit's rows depend on (set by the sweep)
    resized_from: tuple[int, int] | None = None  # (H, W) of a file downscaled for scoring


def subset_record(tags: list[str] | None, limit: int | None, kept: int, total: int
                  ) -> dict[str, Any] | None:
    """What part of a benchmark a run covers (None: all of it), for every summary and table,
    and the folder suffix that keeps a partial run apart from the full one."""
    if not tags and limit is None:
        return None
    from emf_bench.errors import in_range

    if limit is not None:
        in_range("--limit", limit, 1)
    if kept == 0:
        raise EmfBenchError(f"--tags {','.join(tags or [])} selects no prompt")
    suffix = "".join([f".{'+'.join(tags)}" if tags else "",
                      f".first{limit}" if limit is not None else ""])
    return {"tags": list(tags or []), "limit": limit, "prompts": kept, "of": total,
            "suffix": suffix}


def first_items(bench: Any, tags: list[str] | None, limit: int | None) -> Any:
    """`bench` (a dataclass with `items`) cut to its first `limit` items, the cut recorded;
    for benchmarks without task tags (DPG-Bench, GenEval 2)."""
    from dataclasses import replace

    if tags:
        raise EmfBenchError(f"--tags selects GenEval tasks; {bench.name} has none (use "
                            f"--limit)")
    items = bench.items[:limit]
    subset = subset_record(None, limit, len(items), len(bench.items))
    return bench if subset is None else replace(bench, items=items, subset=subset)


def image_seed(seed: int, index: int, sample: int) -> int:
    """A per-image seed that does not depend on batching, chunking or ranks."""
    digest = hashlib.sha256(f"{seed}:{index}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Benchmark(Protocol):
    name: str
    source: str
    needs: str

    def __len__(self) -> int: ...

    def describe(self) -> dict[str, Any]: ...

    def select(self, tags: list[str] | None, limit: int | None) -> Benchmark: ...

    def item(self, index: int) -> dict[str, Any]: ...

    def plan(self, indices: list[int], per_prompt: int, seed: int) -> list[Unit]: ...

    def compose(self, images: list[np.ndarray]) -> np.ndarray: ...

    def save(self, images_dir: Path, units: list[Unit]) -> None: ...

    def read(self, root: Path, indices: list[int]) -> list[Unit]: ...

    def score(self, unit: Unit, scorer: Scorer, rules: Any,
              base: dict[str, Any]) -> list[dict[str, Any]]: ...

    def summarize(self, rows: list[dict[str, Any]], scorer: Scorer) -> dict[str, Any]: ...


def benchmarks() -> dict[str, str]:
    found = dict(BENCHMARKS)
    for ep in importlib.metadata.entry_points(group=BENCHMARK_GROUP):
        found[ep.name] = ep.value
    return found


def benchmark_class(name: str) -> type:
    """The class behind a registered benchmark name (imports its module now)."""
    known = benchmarks()
    if name not in known:
        raise unknown_name("benchmark", name, known)
    module, _, attr = known[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def check_names(names: list[str]) -> None:
    known = benchmarks()
    for name in names:
        if name not in known:
            raise unknown_name("benchmark", name, known)


def load_benchmark(name: str, sources: Sources | None = None) -> Benchmark:
    """A benchmark by name: geneval, dpg (official files), world-geneval, world-dpg, or one
    registered by an entry point."""
    return benchmark_class(name).load(name, sources or Sources())

