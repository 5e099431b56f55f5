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

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench import distributed
from emf_bench.errors import EmfBenchError, check_guidance, in_range
from emf_bench.evaluation import dpg as dpg_rules
from emf_bench.evaluation.geneval import GenEvalRules, detection_colors, evaluate, keep_detections
from emf_bench.evaluation.geneval import summarize as geneval_summary
from emf_bench.evaluation.layouts import dpg_grid, geneval_prompt_dir
from emf_bench.evaluation.suites import DPGSuite, GenEvalSuite
from emf_bench.progress import track
from emf_bench.storage import (
    atomic_save_png,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
)

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


def image_seed(seed: int, index: int, sample: int) -> int:
    """A per-image seed that does not depend on batching, chunking or ranks."""
    digest = hashlib.sha256(f"{seed}:{index}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass
class Scorer:
    """What turns an image into a score: a detector and colour classifier (GenEval) or a VQA
    model (DPG-Bench), with their labels."""

    detector: Any = None
    colors: Callable | None = None  # None: colours carried by the detections (world-exact)
    vqa: Any = None
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


class StepSweep:
    """Evaluate one generator on one suite at several step counts."""

    def __init__(self, generator, suite: GenEvalSuite | DPGSuite, scorer: Scorer,
                 run_path: Path, settings: EvalSettings | None = None,
                 name: str | None = None):
        self.generator, self.suite, self.scorer = generator, suite, scorer
        self.settings = settings or EvalSettings()
        self.name = name or generator.name
        self.root = Path(run_path) / "evals" / model_slug(self.name) / suite.name
        if suite.kind == "geneval" and scorer.detector is None:
            raise EmfBenchError(f"{suite.name} needs a detector")
        if suite.kind == "dpg" and scorer.vqa is None:
            raise EmfBenchError(f"{suite.name} needs a VQA backend")

    # -- bookkeeping ------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"version": SETTINGS_VERSION, "model": self.name, "benchmark": self.suite.name,
                "suite_source": self.suite.source, "generator": self.generator.describe(),
                "scorer": self.scorer.describe(), "settings": self.settings.to_dict(),
                "official_compat": getattr(self.suite, "official_compat", False)}

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
                from emf_bench.progress import stage

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
        n = len(self.suite)
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
        work = self._geneval_chunk if self.suite.kind == "geneval" else self._dpg_chunk
        label = f"{self.name} {self.suite.name} {steps} step{'s' if steps > 1 else ''}"
        for i in track(mine, label, total=len(mine)):
            rows = work(steps, chunks[i], folder)
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

    def _images(self, steps: int, prompts: list[str], seeds: list[int]) -> list[Any]:
        """Generated images, or per-image errors for pre-generated ones that fail to load."""
        return list(self.generator.generate(prompts, steps, seeds, self.settings.guidance))

    def _row_base(self, steps: int) -> dict[str, Any]:
        return {"model": self.name, "benchmark": self.suite.name, "steps": steps}

    def _geneval_chunk(self, steps: int, indices: list[int], folder: Path) -> list[dict]:
        from emf_bench.generators.folder import read_image

        rows_meta = self.suite.rows
        per = self.settings.images_per_prompt
        items: list[tuple[int, int, int, Any]] = []  # (index, sample, seed, image or error)
        if getattr(self.generator, "kind", "") == "folder":
            for index in indices:
                for n, path in enumerate(self.generator.geneval_samples(steps, index,
                                                                        rows_meta[index])):
                    try:
                        items.append((index, n, -1, read_image(path)))
                    except EmfBenchError as err:
                        items.append((index, n, -1, err))
        else:
            plan = [(index, n, image_seed(self.settings.seed, index, n))
                    for index in indices for n in range(per)]
            images = self._images(steps, [rows_meta[i]["prompt"] for i, _, _ in plan],
                                  [s for _, _, s in plan])
            items = [(i, n, s, img) for (i, n, s), img in zip(plan, images, strict=True)]
            if self.settings.save_images:
                for index in indices:
                    out = geneval_prompt_dir(folder / "images", index)
                    atomic_write_text(out / "metadata.jsonl", json.dumps(rows_meta[index]) + "\n")
                for index, n, _, image in items:
                    atomic_save_png(geneval_prompt_dir(folder / "images", index) / "samples"
                                    / f"{n:05d}.png", image)
        rows = []
        for index, n, seed, image in items:
            meta = rows_meta[index]
            row = {**self._row_base(steps), "prompt_index": index, "sample": n,
                   "seed": seed if seed >= 0 else None, "tag": meta["tag"],
                   "prompt": meta["prompt"],
                   "image": f"images/{index:05d}/samples/{n:05d}.png"}
            if isinstance(image, EmfBenchError):
                rows.append({**row, "correct": False, "reason": "image error",
                             "error": str(image), "detections": {}})
                continue
            rows.append({**row, **self.score_geneval(image, meta)})
        return rows

    def score_geneval(self, image: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
        rules = self.settings.rules
        detections = self.scorer.detector.detect(image)
        kept = keep_detections(detections, meta["tag"], rules)
        if self.scorer.colors is None:
            colors = detection_colors
        else:
            def colors(found, classname):
                return self.scorer.colors(image, found, classname)
        correct, reason = evaluate(kept, meta, colors, rules)
        out = {"correct": correct, "reason": reason,
               "detections": {k: [d.to_dict() for d in v] for k, v in kept.items()}}
        if self.scorer.strict_world:
            out["strict_correct"] = correct and strict_ok(kept, meta)
        return out

    def _dpg_chunk(self, steps: int, indices: list[int], folder: Path) -> list[dict]:
        from emf_bench.generators.folder import read_image

        items = [self.suite.items[i] for i in indices]
        grids: list[Any] = []
        seeds: list[list[int | None]] = []
        if getattr(self.generator, "kind", "") == "folder":
            for item in items:
                path = self.generator.dpg_grid(steps, item.item_id)  # missing: the run stops
                try:
                    grids.append(read_image(path))
                except EmfBenchError as err:  # undecodable: recorded, counted, reported
                    grids.append(err)
                seeds.append([None] * 4)
        else:
            plan = [(k, tile, image_seed(self.settings.seed, k, tile))
                    for k in indices for tile in range(4)]
            lookup = {item.item_id: item for item in items}
            prompts = [self.suite.items[k].prompt for k, _, _ in plan]
            tiles = self._images(steps, prompts, [s for _, _, s in plan])
            for j, item in enumerate(items):
                grid = dpg_grid(tiles[4 * j:4 * j + 4])
                grids.append(grid)
                seeds.append([s for _, _, s in plan[4 * j:4 * j + 4]])
                if self.settings.save_images:
                    atomic_save_png(folder / "images" / f"{lookup[item.item_id].item_id}.png",
                                    grid)
        rows = []
        for item, grid, tile_seeds in zip(items, grids, seeds, strict=True):
            base = {**self._row_base(steps), "item_id": item.item_id, "prompt": item.prompt,
                    "image": f"images/{item.item_id}.png"}
            if isinstance(grid, EmfBenchError):
                rows += [{**base, "tile": t, "seed": None, "error": str(grid), "answers": [],
                          "scores": [], "score": 0.0} for t in range(4)]
                continue
            try:
                tiles = dpg_rules.split_grid(grid, f"grid {item.item_id}")
            except EmfBenchError as err:
                rows += [{**base, "tile": t, "seed": None, "error": str(err), "answers": [],
                          "scores": [], "score": 0.0} for t in range(4)]
                continue
            questions = [q.question for q in item.questions]
            for t, tile in enumerate(tiles):
                answers = self.scorer.vqa.answer(np.ascontiguousarray(tile), questions)
                scored = dpg_rules.score_tile(item.questions, answers)
                rows.append({**base, "tile": t, "seed": tile_seeds[t], **scored})
        return rows

    # -- summaries --------------------------------------------------------------------------

    def summarize(self, steps: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        head = {**self._row_base(steps), "scorer": self.scorer.describe(),
                "generator": self.generator.describe(), "settings": self.settings.to_dict(),
                "errors": sum(1 for r in rows if r.get("error"))}
        if self.suite.kind == "geneval":
            for r in rows:
                r.setdefault("prompt_key", r["prompt_index"])
            out = {**head, **geneval_summary(rows)}
            if self.scorer.strict_world:
                strict = geneval_summary([{**r, "correct": r.get("strict_correct", False)}
                                          for r in rows])
                out["strict_extra"] = {"tasks": strict["tasks"], "overall": strict["overall"],
                                       "note": "extra, not GenEval's rule: images with objects "
                                               "the prompt does not ask for also fail"}
            for r in rows:
                r.pop("prompt_key", None)
            return out
        tiles: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            tiles.setdefault(r["item_id"], []).append(r)
        for item_rows in tiles.values():
            item_rows.sort(key=lambda r: r["tile"])
        return {**head, **dpg_rules.summarize(self.suite.items, tiles,
                                              getattr(self.suite, "official_compat", False))}


def strict_ok(kept: dict[str, list], meta: dict[str, Any]) -> bool:
    """The world's strict extra: no class beyond the prompt's, and no more objects of a class
    than the prompt asks for (GenEval itself ignores extras except when counting)."""
    wanted: dict[str, int] = {}
    for clause in meta.get("include", []):
        wanted[clause["class"]] = wanted.get(clause["class"], 0) + clause["count"]
    return all(len(found) <= wanted.get(label, 0) for label, found in kept.items())


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
        if "tasks" in s:  # GenEval
            metrics = {"overall": s["overall"], **s["tasks"],
                       "correct_images": s["correct_images"],
                       "correct_prompts": s["correct_prompts"]}
            if "strict_extra" in s:
                metrics["strict_overall (extra)"] = s["strict_extra"]["overall"]
        else:
            metrics = {"overall": s["overall"], **{f"L1 {k}": v for k, v in s["level1"].items()},
                       **{f"L2 {k}": v for k, v in s["level2"].items()}}
        for metric, value in metrics.items():
            records.append({**base, "metric": metric, "value": value})
    return pd.DataFrame.from_records(records, columns=[
        "model", "benchmark", "steps", "backend", "official_backend", "generator_kind", "metric",
        "value"])
