"""The step sweep: one generator, one benchmark, several step counts, into a run directory.

    <run>/evals/<model>/<benchmark>/settings.json        what the results were computed with
    <run>/evals/<model>/<benchmark>/steps-<k>/images/    the official layout (GenEval folders,
                                                         DPG-Bench 2x2 grids), drop-in for the
                                                         official scripts
    <run>/evals/<model>/<benchmark>/steps-<k>/chunks/    per-chunk result rows (atomic)
    <run>/evals/<model>/<benchmark>/steps-<k>/results.jsonl  one row per image (GenEval) or
                                                         tile (DPG), merged from the chunks
    <run>/evals/<model>/<benchmark>/steps-<k>/summary.json

Prompts are split into fixed chunks; a chunk's images and rows are written before its chunk
file, and a chunk file means the chunk is done. A re-run skips finished chunks and redoes any
partial one whole (same batch, same seeds), so an interrupted run ends with the same results as
an uninterrupted one. Under torchrun, chunks are dealt to ranks and rank 0 merges.
Every image's seed is a function of (seed, prompt index, sample), recorded in its row.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emf_bench import distributed
from emf_bench.errors import EmfBenchError, check_guidance, in_range
from emf_bench.evaluation.benchmarks import Benchmark, Scorer, Unit, benchmark_class
from emf_bench.evaluation.geneval import GenEvalRules
from emf_bench.progress import stage, track
from emf_bench.storage import atomic_write_json, atomic_write_jsonl, atomic_write_text

SETTINGS_VERSION = 1


@dataclass
class EvalSettings:
    images_per_prompt: int = 4  # GenEval; DPG-Bench always has 4 tiles per prompt
    seed: int = 0
    guidance: float = 1.0
    chunk_prompts: int = 16
    rules: GenEvalRules = field(default_factory=GenEvalRules)
    save_images: bool = True

    def __post_init__(self) -> None:
        in_range("--images-per-prompt", self.images_per_prompt, 1)
        check_guidance(self.guidance)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("chunk_prompts")  # changes the work split, never the results
        out.pop("save_images")
        return out


def model_slug(name: str) -> str:
    """A folder name for a model name (`probe:class-label/meanflow` -> `probe-class-label-...`)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return slug or "model"


class StepSweep:
    """Evaluate one generator on one benchmark at several step counts."""

    def __init__(self, generator, benchmark: Benchmark, scorer: Scorer, run_path: Path,
                 settings: EvalSettings | None = None, name: str | None = None):
        self.generator, self.benchmark, self.scorer = generator, benchmark, scorer
        self.settings = settings or EvalSettings()
        self.name = name or generator.name
        self.root = Path(run_path) / "evals" / model_slug(self.name) / benchmark.name
        if getattr(scorer, benchmark.needs, None) is None:
            raise EmfBenchError(f"{benchmark.name} needs a {benchmark.needs} backend")

    # -- bookkeeping ------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"version": SETTINGS_VERSION, "model": self.name, **self.benchmark.describe(),
                "generator": self.generator.describe(), "scorer": self.scorer.describe(),
                "settings": self.settings.to_dict()}

    def _check_settings(self, overwrite: bool, replace_stale: bool = False) -> None:
        file = self.root / "settings.json"
        mine = json.loads(json.dumps(self.describe(), default=str))
        if file.exists() and not overwrite:
            try:
                theirs = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise EmfBenchError(f"corrupt {file}: {err}") from None
            if theirs.get("version", 0) > SETTINGS_VERSION:
                raise EmfBenchError(f"{file} comes from a newer emf-bench")
            changed = [k for k in ("settings", "scorer", "generator", "official_compat",
                                   "suite_source") if theirs.get(k) != mine.get(k)]
            if changed and replace_stale:
                stage(f"replacing {self.root} (computed with other {', '.join(changed)})")
                overwrite = True
            elif changed:
                raise EmfBenchError(f"{self.root} holds results computed with other "
                                    f"{', '.join(changed)}; pass --overwrite to replace them "
                                    f"or use another --run-dir")
        if distributed.is_main():
            if overwrite and self.root.exists():
                shutil.rmtree(self.root)
            atomic_write_json(file, mine)
        distributed.barrier()

    def chunks(self) -> list[list[int]]:
        n = len(self.benchmark)
        size = max(1, self.settings.chunk_prompts)
        return [list(range(i, min(i + size, n))) for i in range(0, n, size)]

    # -- the sweep --------------------------------------------------------------------------

    def run(self, steps: Sequence[int], overwrite: bool = False,
            replace_stale: bool = False) -> dict[int, dict[str, Any]]:
        """Scores per step count. Results already there are kept and resumed; results computed
        with other settings or another generator state are refused, or with `replace_stale`
        (a study bringing its own evaluations up to date) recomputed."""
        self._check_settings(overwrite, replace_stale)
        return {k: self.run_steps(k) for k in steps}

    def run_steps(self, steps: int) -> dict[str, Any]:
        folder = self.root / f"steps-{steps}"
        chunks = self.chunks()
        todo = [i for i in range(len(chunks))
                if not (folder / "chunks" / f"chunk-{i:05d}.jsonl").exists()]
        mine = todo[distributed.rank()::distributed.world_size()]
        label = f"{self.name} {self.benchmark.name} {steps} step{'s' if steps > 1 else ''}"
        for i in track(mine, label, total=len(mine)):
            rows = self._chunk(steps, chunks[i], folder)
            atomic_write_jsonl(folder / "chunks" / f"chunk-{i:05d}.jsonl", rows)
        distributed.barrier()
        rows = []
        for i in range(len(chunks)):
            file = folder / "chunks" / f"chunk-{i:05d}.jsonl"
            rows += [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]
        summary = self.summarize(steps, rows)
        if distributed.is_main():
            atomic_write_text(folder / "results.jsonl",
                              "".join(json.dumps(r) + "\n" for r in rows))
            atomic_write_json(folder / "summary.json", summary)
        distributed.barrier()
        return summary

    def _units(self, steps: int, indices: list[int], folder: Path) -> list[Unit]:
        """The chunk's units with their images: read from a folder of pre-generated images, or
        generated (one seed per image) and saved in the benchmark's official layout."""
        if getattr(self.generator, "kind", "") == "folder":
            return self.benchmark.read(self.generator.root(steps), indices)
        units = self.benchmark.plan(indices, self.settings.images_per_prompt, self.settings.seed)
        images = iter(self.generator.generate([p for u in units for p in u.prompts], steps,
                                              [s for u in units for s in u.seeds],
                                              self.settings.guidance))
        for u in units:
            u.image = self.benchmark.compose([next(images) for _ in u.prompts])
        if self.settings.save_images:
            self.benchmark.save(folder / "images", units)
        return units

    def _chunk(self, steps: int, indices: list[int], folder: Path) -> list[dict[str, Any]]:
        base = {"model": self.name, "benchmark": self.benchmark.name, "steps": steps}
        return [row for u in self._units(steps, indices, folder)
                for row in self.benchmark.score(u, self.scorer, self.settings.rules, base)]

    def summarize(self, steps: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The benchmark's summary of `rows` (not changed) with what it was computed with."""
        return {"model": self.name, "benchmark": self.benchmark.name, "steps": steps,
                "scorer": self.scorer.describe(), "generator": self.generator.describe(),
                "settings": self.settings.to_dict(),
                "errors": sum(1 for r in rows if r.get("error")),
                **self.benchmark.summarize(rows, self.scorer)}


def collect_summaries(run_path: Path) -> list[dict[str, Any]]:
    """Every summary.json under <run>/evals, as read."""
    out = []
    for file in sorted(Path(run_path).glob("evals/*/*/steps-*/summary.json")):
        try:
            out.append(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            raise EmfBenchError(f"corrupt {file}: {err}") from None
    return out


def summary_table(summaries: Sequence[dict[str, Any]]):
    """Long-form pandas table: one row per (model, benchmark, steps, metric)."""
    import pandas as pd

    records = []
    for s in summaries:
        scorer = s.get("scorer", {})
        backend = (scorer.get("detector") or scorer.get("vqa") or {}).get("name")
        base = {"model": s["model"], "benchmark": s["benchmark"], "steps": s["steps"],
                "backend": backend, "official_backend": bool(scorer.get("official")),
                "generator_kind": s.get("generator", {}).get("kind")}
        for metric, value in benchmark_class(s["benchmark"]).metrics(s).items():
            records.append({**base, "metric": metric, "value": value})
    return pd.DataFrame.from_records(records, columns=[
        "model", "benchmark", "steps", "backend", "official_backend", "generator_kind", "metric",
        "value"])
