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
file. Every row carries the content key of what it was computed from: the image file's bytes
(pre-generated images) or the prompts and seeds (a model's), the prompt's definition, the
generator's weights and settings, the scorer and the step count. A re-run reuses a row only when
its key matches, so a replaced image, an edited metadata line or a retrained probe is scored
again, and a run directory copied elsewhere resumes. A model's chunk with anything to redo is
generated whole (same batch, same seeds), so an interrupted run ends with the same results as an
uninterrupted one. A chunk file torn by a crash or an edit loses only its unreadable lines.
Under torchrun, chunks are dealt to ranks and rank 0 merges. Every image's seed is a function of
(seed, prompt index, sample), recorded in its row.
"""

from __future__ import annotations

import hashlib
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
from emf_bench.progress import note, stage, track
from emf_bench.storage import atomic_write_json, atomic_write_jsonl, atomic_write_text

SETTINGS_VERSION = 2  # 2: rows keyed on content


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


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# Fields of a generator's description that say where it lies, not what it is: a run directory
# or probe folder moved elsewhere is the same generator.
LOCATION_FIELDS = ("path",)


def generator_identity(description: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in description.items() if k not in LOCATION_FIELDS}


def read_chunk_rows(file: Path) -> tuple[list[dict[str, Any]], int]:
    """The rows of a chunk file and how many of its lines could not be read (a torn write, an
    edit): those rows are recomputed, never fatal."""
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return [], 1
    rows, bad = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(row, dict) and isinstance(row.get("key"), str):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


class StepSweep:
    """Evaluate one generator on one benchmark at several step counts."""

    def __init__(self, generator, benchmark: Benchmark, scorer: Scorer, run_path: Path,
                 settings: EvalSettings | None = None, name: str | None = None):
        self.generator, self.benchmark, self.scorer = generator, benchmark, scorer
        self.settings = settings or EvalSettings()
        self.name = name or generator.name
        subset = benchmark.describe().get("subset") or {}
        self.root = (Path(run_path) / "evals" / model_slug(self.name)
                     / f"{benchmark.name}{subset.get('suffix', '')}")
        if getattr(scorer, benchmark.needs, None) is None:
            raise EmfBenchError(f"{benchmark.name} needs a {benchmark.needs} backend")

    # -- bookkeeping ------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"version": SETTINGS_VERSION, "model": self.name, **self.benchmark.describe(),
                "suite": _digest([self.benchmark.item(i) for i in range(len(self.benchmark))]),
                "generator": self.generator.describe(), "scorer": self.scorer.describe(),
                "settings": self.settings.to_dict()}

    def _check_settings(self, overwrite: bool, replace_stale: bool = False) -> None:
        """Results of another generator, scorer, suite or settings are refused (or, for a
        study, replaced); where the folders lie does not matter (rows are keyed on content)."""
        file = self.root / "settings.json"
        mine = json.loads(json.dumps(self.describe(), default=str))
        if file.exists() and not overwrite:
            try:
                theirs = json.loads(file.read_text(encoding="utf-8"))
                version = theirs.get("version", 0)
                if not isinstance(version, int):
                    raise ValueError(f"version {version!r}")
            except (OSError, ValueError, AttributeError) as err:
                note(f"{file} is unreadable ({err}); rewriting it: rows are reused only where "
                     f"their content keys match")
                theirs = mine
                version = SETTINGS_VERSION
            if version > SETTINGS_VERSION:
                raise EmfBenchError(f"{file} comes from a newer emf-bench")
            theirs["generator"] = generator_identity(theirs.get("generator") or {})
            ours = {**mine, "generator": generator_identity(mine["generator"])}
            changed = [k for k in ("settings", "scorer", "generator", "official_compat", "suite")
                       if version == SETTINGS_VERSION and theirs.get(k) != ours.get(k)]
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
        old: dict[str, list[dict[str, Any]]] = {}
        torn = 0
        for file in sorted((folder / "chunks").glob("chunk-*.jsonl")):
            rows, bad = read_chunk_rows(file)
            torn += bad
            for row in rows:
                old.setdefault(row["key"], []).append(row)
        if torn:
            note(f"{folder / 'chunks'}: {torn} unreadable line(s) skipped; their rows are "
                 f"computed again")
        context = _digest({"generator": generator_identity(self.generator.describe()),
                           "scorer": self.scorer.describe(), "settings": self.settings.to_dict(),
                           "benchmark": self.benchmark.describe().get("benchmark"),
                           "steps": steps})
        mine = list(range(len(chunks)))[distributed.rank()::distributed.world_size()]
        label = f"{self.name} {self.benchmark.name} {steps} step{'s' if steps > 1 else ''}"
        counts = {"reused": 0, "computed": 0}
        self._short: dict[int, tuple[int, int]] = {}  # prompt -> (images found, asked for)
        for i in track(mine, label, total=len(mine)):
            file = folder / "chunks" / f"chunk-{i:05d}.jsonl"
            units = self._keyed_units(steps, chunks[i], context)
            if all(u.key in old for u in units) and file.exists():
                kept, _ = read_chunk_rows(file)
                if sorted({r["key"] for r in kept}) == sorted({u.key for u in units}) \
                        and len(kept) == sum(len(old[u.key]) for u in units):
                    counts["reused"] += len(kept)
                    continue
            rows = self._chunk(steps, units, old, folder, counts)
            atomic_write_jsonl(file, rows)
        distributed.barrier()
        rows = []
        for i in range(len(chunks)):
            rows += read_chunk_rows(folder / "chunks" / f"chunk-{i:05d}.jsonl")[0]
        if counts["reused"] and distributed.is_main():
            note(f"{label}: {counts['reused']} row(s) reused (same content), "
                 f"{counts['computed']} computed" + (" on rank 0" if
                                                     distributed.world_size() > 1 else ""))
        summary = self.summarize(steps, rows)
        if self._short:
            index, (found, asked) = next(iter(self._short.items()))
            note(f"{label}: {len(self._short)} prompt(s) have fewer images than the "
                 f"{asked} asked for (--images-per-prompt), e.g. prompt {index} has {found}; "
                 f"they are scored on the images there are")
        if distributed.is_main():
            self._report_images(label, rows)
            atomic_write_text(folder / "results.jsonl",
                              "".join(json.dumps(r) + "\n" for r in rows))
            atomic_write_json(folder / "summary.json", summary)
        distributed.barrier()
        return summary

    def _keyed_units(self, steps: int, indices: list[int], context: str) -> list[Unit]:
        """The chunk's units, each with the content key of what its rows depend on; a
        pre-generated image's file is read here (its bytes are part of the key), not decoded."""
        if getattr(self.generator, "kind", "") == "folder":
            units = self.benchmark.read(self.generator.root(steps), indices)
            for i in indices:
                found = sum(u.index == i for u in units)
                planned = len(self.benchmark.plan([i], self.settings.images_per_prompt, 0))
                if found < planned:
                    self._short[i] = (found, planned)
        else:
            units = self.benchmark.plan(indices, self.settings.images_per_prompt,
                                        self.settings.seed)
        for u in units:
            content = None
            if u.file is not None:
                try:
                    u.data = Path(u.file).read_bytes()  # decoded only if it must be scored
                    content = hashlib.sha256(u.data).hexdigest()
                except OSError as err:
                    u.image = EmfBenchError(f"cannot read image {u.file}: "
                                            f"{err.strerror or err}")
                    content = f"unreadable: {u.image}"
            u.key = _digest([context, self.benchmark.item(u.index), u.sample, u.prompts,
                             u.seeds, u.path, content])
        return units

    def _images(self, steps: int, units: list[Unit], folder: Path) -> None:
        """Each unit's image: a pre-generated file decoded (an error is kept, scored as a
        failure and reported), or the whole chunk generated (one seed per image) and saved in
        the benchmark's official layout."""
        if getattr(self.generator, "kind", "") == "folder":
            from emf_bench.images import decode_image

            for u in units:
                if u.data is not None:
                    try:
                        u.image, u.resized_from = decode_image(u.data, str(u.file))
                    except EmfBenchError as err:
                        u.image = err
                    u.data = None
            return
        images = iter(self.generator.generate([p for u in units for p in u.prompts], steps,
                                              [s for u in units for s in u.seeds],
                                              self.settings.guidance))
        for u in units:
            u.image = self.benchmark.compose([next(images) for _ in u.prompts])
        if self.settings.save_images:
            self.benchmark.save(folder / "images", units)

    def _chunk(self, steps: int, units: list[Unit], old: dict[str, list[dict[str, Any]]],
               folder: Path, counts: dict[str, int]) -> list[dict[str, Any]]:
        """The chunk's rows: those whose content key matches reused, the others computed."""
        todo = [u for u in units if u.key not in old]
        generating = getattr(self.generator, "kind", "") != "folder"
        if todo:
            self._images(steps, units if generating else todo, folder)
        base = {"model": self.name, "benchmark": self.benchmark.name, "steps": steps}
        rows = []
        for u in units:
            if u.key in old:
                rows += old[u.key]
                counts["reused"] += len(old[u.key])
                continue
            extra = {"key": u.key}
            if u.resized_from is not None:
                extra["resized_from"] = list(u.resized_from)
            new = [{**row, **extra} for row in self.benchmark.score(
                u, self.scorer, self.settings.rules, base)]
            counts["computed"] += len(new)
            rows += new
        return rows

    def _report_images(self, label: str, rows: list[dict[str, Any]]) -> None:
        """Images that failed to load and images downscaled, in the terminal (the first few
        and a count), not only in results.jsonl."""
        failed = {r["image"]: r["error"] for r in rows if r.get("error")}
        if failed:
            shown = "; ".join(list(failed.values())[:3])
            note(f"{label}: {len(failed)} image(s) could not be scored and count as failures: "
                 f"{shown}{' ...' if len(failed) > 3 else ''} (all in results.jsonl)")
        resized = {r["image"]: r["resized_from"] for r in rows if r.get("resized_from")}
        if resized:
            largest = max(resized.values(), key=lambda hw: hw[0] * hw[1])
            note(f"{label}: {len(resized)} image(s) larger than the scoring limit were "
                 f"downscaled (largest {largest[1]}x{largest[0]} px); rows record "
                 f"resized_from")

    def summarize(self, steps: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The benchmark's summary of `rows` (not changed) with what it was computed with."""
        from emf_bench.rundir import provenance

        generator = self.generator.describe()
        return {"model": self.name, "benchmark": self.benchmark.name, "steps": steps,
                "subset": self.benchmark.describe().get("subset"),
                "suite": self.benchmark.describe(),
                "scorer": self.scorer.describe(), "generator": generator,
                "settings": self.settings.to_dict(),
                "errors": sum(1 for r in rows if r.get("error")),
                **self.benchmark.summarize(rows, self.scorer),
                "provenance": provenance(seed=self.settings.to_dict().get("seed"),
                                         device=generator.get("device"),
                                         models={self.name: generator.get("weights")})}


def collect_summaries(run_path: Path) -> list[dict[str, Any]]:
    """Every summary.json under <run>/evals, as read."""
    out = []
    for file in sorted(Path(run_path).glob("evals/*/*/steps-*/summary.json")):
        try:
            out.append(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            raise EmfBenchError(f"corrupt {file}: {err}; run the same eval again (finished "
                                f"rows are reused) to rewrite it") from None
    return out


def summary_table(summaries: Sequence[dict[str, Any]]):
    """Long-form pandas table: one row per (model, benchmark, steps, metric)."""
    import pandas as pd

    records = []
    for s in summaries:
        scorer = s.get("scorer", {})
        backend = (scorer.get("detector") or scorer.get("vqa") or {}).get("name")
        subset = s.get("subset")
        base = {"model": s["model"], "benchmark": s["benchmark"], "steps": s["steps"],
                "backend": backend, "official_backend": bool(scorer.get("official")),
                "generator_kind": s.get("generator", {}).get("kind"),
                "subset": subset_label(subset) if subset else "all prompts"}
        for metric, value in benchmark_class(s["benchmark"]).metrics(s).items():
            records.append({**base, "metric": metric, "value": value})
    return pd.DataFrame.from_records(records, columns=[
        "model", "benchmark", "steps", "backend", "official_backend", "generator_kind",
        "subset", "metric", "value"])


def subset_label(subset: dict[str, Any]) -> str:
    """A partial run in words: "PARTIAL: 8 of 553 prompts (tasks position; first 8)"."""
    parts = [f"tasks {', '.join(subset['tags'])}"] if subset.get("tags") else []
    if subset.get("limit") is not None:
        parts.append(f"first {subset['limit']}")
    return f"PARTIAL: {subset['prompts']} of {subset['of']} prompts ({'; '.join(parts)})"
