"""GenEval as a benchmark: its metadata (official file or the world's suite), one image a unit,
scored by a detector and colour classifier under GenEval's rules (`evaluation.geneval`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError, unknown_name
from emf_bench.evaluation import geneval as rules_
from emf_bench.evaluation.benchmarks import (
    BackendOptions,
    Scorer,
    Sources,
    Unit,
    image_seed,
    subset_record,
)
from emf_bench.evaluation.layouts import geneval_prompt_dir, geneval_sample_files
from emf_bench.inputs import existing_file
from emf_bench.spatial import RELATIONS
from emf_bench.storage import atomic_save_png, atomic_write_text

STRICT_NOTE = ("extra, not GenEval's rule: images with objects the prompt does not ask for also "
               "fail")


def _check_clause(clause: Any, where: str, position_allowed: int | None) -> None:
    if not isinstance(clause, dict):
        raise EmfBenchError(f"{where}: a clause must be an object, got {clause!r}")
    if not isinstance(clause.get("class"), str) or not clause["class"]:
        raise EmfBenchError(f"{where}: clause without a 'class' name: {clause!r}")
    count = clause.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise EmfBenchError(f"{where}: clause {clause['class']!r} needs an integer count >= 1")
    if "color" in clause and clause["color"] not in rules_.COLORS:
        raise EmfBenchError(f"{where}: unknown colour {clause['color']!r}; GenEval's colours "
                            f"are {', '.join(rules_.COLORS)}")
    if "position" in clause:
        pos = clause["position"]
        if position_allowed is None:
            raise EmfBenchError(f"{where}: 'position' is only allowed in include clauses")
        if (not isinstance(pos, list) or len(pos) != 2 or pos[0] not in RELATIONS
                or not isinstance(pos[1], int) or not 0 <= pos[1] < position_allowed):
            raise EmfBenchError(f"{where}: position must be [relation, index of an earlier "
                                f"include clause], got {pos!r}")


def check_geneval_row(row: Any, where: str) -> dict[str, Any]:
    """One metadata line, checked against GenEval's schema."""
    if not isinstance(row, dict):
        raise EmfBenchError(f"{where}: expected a JSON object")
    if row.get("tag") not in rules_.TASKS:
        raise unknown_name(f"GenEval tag at {where}:", str(row.get("tag")), rules_.TASKS)
    if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
        raise EmfBenchError(f"{where}: missing or empty 'prompt'")
    include = row.get("include")
    if not isinstance(include, list) or not include:
        raise EmfBenchError(f"{where}: 'include' must be a non-empty list of clauses")
    for i, clause in enumerate(include):
        _check_clause(clause, where, position_allowed=i)
    exclude = row.get("exclude", [])
    if not isinstance(exclude, list):
        raise EmfBenchError(f"{where}: 'exclude' must be a list of clauses")
    for clause in exclude:
        _check_clause(clause, where, position_allowed=None)
    return row


def load_geneval_metadata(path: Path) -> list[dict[str, Any]]:
    """GenEval's `evaluation_metadata.jsonl` (or any file in its schema), every line checked."""
    path = existing_file(path, "GenEval metadata")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise EmfBenchError(f"cannot read GenEval metadata {path}: {err}") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise EmfBenchError(f"{path}:{number}: not JSON ({err.msg})") from None
        rows.append(check_geneval_row(row, f"{path}:{number}"))
    if not rows:
        raise EmfBenchError(f"GenEval metadata {path} has no prompts")
    return rows


def strict_ok(kept: dict[str, list], meta: dict[str, Any]) -> bool:
    """The world's strict extra: no class beyond the prompt's, and no more objects of a class
    than the prompt asks for (GenEval itself ignores extras except when counting)."""
    wanted: dict[str, int] = {}
    for clause in meta.get("include", []):
        wanted[clause["class"]] = wanted.get(clause["class"], 0) + clause["count"]
    return all(len(found) <= wanted.get(label, 0) for label, found in kept.items())


def bootstrap_geneval(rows: list[dict[str, Any]], resamples: int = 1000, seed: int = 0,
                      level: float = 0.95, method: str = "percentile") -> dict[str, Any]:
    """GenEval overall (and per task) with intervals from scipy's bootstrap over prompts,
    stratified by task (the overall score is the unweighted mean of task scores; each task's
    prompts are resampled on their own). Per task and overall use the same resamples (one
    seeded stream in task order), so a task's interval and the overall one agree."""
    import warnings

    from scipy.stats import bootstrap

    by_task: dict[str, dict[Any, list[float]]] = {}
    for r in rows:
        key = r.get("prompt_index", r.get("prompt"))
        by_task.setdefault(r["tag"], {}).setdefault(key, []).append(float(r["correct"]))
    if not by_task:
        return {}
    samples = {t: np.array([np.mean(v) for v in p.values()]) for t, p in by_task.items()}

    def mean_of_means(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean([x.mean(axis=axis) for x in xs], axis=0)

    def interval(data: tuple[np.ndarray, ...], rng: np.random.Generator) -> tuple[float, float]:
        if any(len(x) == 1 for x in data):  # scipy needs two: every resample is the value
            for x in data:
                rng.integers(0, len(x), (resamples, len(x)))  # the stream moves on as it would
            value = float(mean_of_means(*data))
            return value, value
        with warnings.catch_warnings():  # a constant task: a zero-width interval, as it should
            warnings.simplefilter("ignore")
            ci = bootstrap(data, mean_of_means, n_resamples=resamples, confidence_level=level,
                           method=method, rng=rng, vectorized=True).confidence_interval
        return float(ci.low), float(ci.high)

    out: dict[str, Any] = {"tasks": {}}
    stream = np.random.default_rng(seed)
    for task, values in samples.items():
        low, high = interval((values,), stream)
        out["tasks"][task] = {"score": float(values.mean()), "low": low, "high": high,
                              "prompts": len(values)}
    low, high = interval(tuple(samples.values()), np.random.default_rng(seed))
    out.update(score=float(np.mean([t["score"] for t in out["tasks"].values()])), low=low,
               high=high, resamples=resamples, level=level, method=method)
    return out


@dataclass
class GenEvalBenchmark:
    name: str  # "geneval" or "world-geneval"
    rows: list[dict[str, Any]]  # metadata lines, GenEval's schema
    source: str
    subset: dict[str, Any] | None = None  # a part of the suite (--tags, --limit)

    needs = "detector"

    @classmethod
    def load(cls, name: str, sources: Sources) -> GenEvalBenchmark:
        if name.startswith("world-"):
            from emf_bench.world import World, WorldConfig

            return cls(name, World(WorldConfig.from_dict(sources.world)).geneval_suite(),
                       "emf-bench world")
        if sources.geneval_metadata is None:
            raise EmfBenchError(f"--benchmark {name} needs --geneval-metadata PATH (GenEval's "
                                f"prompts/evaluation_metadata.jsonl)")
        return cls(name, load_geneval_metadata(sources.geneval_metadata),
                   str(sources.geneval_metadata))

    def __len__(self) -> int:  # prompts
        return len(self.rows)

    def describe(self) -> dict[str, Any]:
        return {"benchmark": self.name, "suite_source": self.source, "official_compat": False,
                "subset": self.subset}

    def select(self, tags: list[str] | None, limit: int | None) -> GenEvalBenchmark:
        """The prompts of GenEval tasks `tags` (all: None), the first `limit` of them."""
        for tag in tags or []:
            if tag not in rules_.TASKS:
                raise unknown_name("GenEval task in --tags:", tag, rules_.TASKS)
        rows = [r for r in self.rows if not tags or r["tag"] in tags][:limit]
        subset = subset_record(tags, limit, len(rows), len(self.rows))
        return self if subset is None else replace(self, rows=rows, subset=subset)

    def item(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    # -- images -----------------------------------------------------------------------------

    def plan(self, indices: list[int], per_prompt: int, seed: int) -> list[Unit]:
        return [Unit(i, n, [self.rows[i]["prompt"]], [image_seed(seed, i, n)],
                     f"images/{i:05d}/samples/{n:05d}.png")
                for i in indices for n in range(per_prompt)]

    def compose(self, images: list[np.ndarray]) -> np.ndarray:
        (image,) = images
        return image

    def save(self, images_dir: Path, units: list[Unit]) -> None:
        for index in sorted({u.index for u in units}):
            atomic_write_text(geneval_prompt_dir(images_dir, index) / "metadata.jsonl",
                              json.dumps(self.rows[index]) + "\n")
        for u in units:
            atomic_save_png(geneval_prompt_dir(images_dir, u.index) / "samples"
                            / f"{u.sample:05d}.png", u.image)

    def read(self, root: Path, indices: list[int]) -> list[Unit]:
        return [Unit(index, n, [self.rows[index]["prompt"]], [None],
                     f"images/{index:05d}/samples/{n:05d}.png", file=path)
                for index in indices
                for n, path in enumerate(geneval_sample_files(root, index, self.rows[index]))]

    # -- scores -----------------------------------------------------------------------------

    def score(self, unit: Unit, scorer: Scorer, rules: rules_.GenEvalRules,
              base: dict[str, Any]) -> list[dict[str, Any]]:
        meta = self.rows[unit.index]
        row = {**base, "prompt_index": unit.index, "sample": unit.sample, "seed": unit.seeds[0],
               "tag": meta["tag"], "prompt": meta["prompt"], "image": unit.path}
        if isinstance(unit.image, EmfBenchError):
            return [{**row, "correct": False, "reason": "image error", "error": str(unit.image),
                     "detections": {}}]
        image = unit.image
        kept = rules_.keep_detections(scorer.detector.detect(image), meta["tag"], rules)
        if scorer.colors is None:
            colors = rules_.detection_colors
        else:
            def colors(found, classname):
                return scorer.colors(image, found, classname)
        correct, reason = rules_.evaluate(kept, meta, colors, rules)
        row.update(correct=correct, reason=reason,
                   detections={k: [d.to_dict() for d in v] for k, v in kept.items()})
        if scorer.strict_world:
            row["strict_correct"] = correct and strict_ok(kept, meta)
        return [row]

    def summarize(self, rows: list[dict[str, Any]], scorer: Scorer) -> dict[str, Any]:
        out = rules_.summarize(rows, prompt_key="prompt_index")
        if scorer.strict_world:
            strict = rules_.summarize([{**r, "correct": r.get("strict_correct", False)}
                                       for r in rows], prompt_key="prompt_index")
            out["strict_extra"] = {"tasks": strict["tasks"], "overall": strict["overall"],
                                   "note": STRICT_NOTE}
        return out

    @staticmethod
    def metrics(summary: dict[str, Any]) -> dict[str, float]:
        out = {"overall": summary["overall"], **summary["tasks"],
               "correct_images": summary["correct_images"],
               "correct_prompts": summary["correct_prompts"]}
        if "strict_extra" in summary:
            out["strict_overall (extra)"] = summary["strict_extra"]["overall"]
        return out

    @staticmethod
    def table(summaries: dict[int, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
        tasks = list(next(iter(summaries.values()))["tasks"])
        rows = [[f"{s['overall']:.3f}", *(f"{s['tasks'].get(t, float('nan')):.2f}"
                                          for t in tasks),
                 f"{s['correct_images']:.2f}", f"{s['correct_prompts']:.2f}"]
                for s in summaries.values()]
        return ["overall", *tasks, "images ok", "prompts ok"], rows

    @staticmethod
    def intervals(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return bootstrap_geneval(rows)

    def make_scorer(self, options: BackendOptions, world: dict[str, Any]) -> Scorer:
        from emf_bench.evaluation.detectors import ClipColorClassifier, load_detector

        in_world = self.name.startswith("world-")
        name = options.detector or ("world-exact" if in_world else "mask2former-hf")
        if name == "world-exact" and not in_world:
            raise EmfBenchError("the world-exact detector knows only the world's shapes; use "
                                "--detector mask2former-hf or mmdet for GenEval")
        detector = load_detector(name, world, options.device, options.detector_model,
                                 options.mmdet_config, options.mmdet_checkpoint)
        colors = None if name == "world-exact" else ClipColorClassifier(
            options.color_model, options.device)
        return Scorer(detector=detector, colors=colors,
                      strict_world=options.strict and name == "world-exact")
