"""DPG-Bench (ELLA repo, dpg_bench/compute_dpg_bench.py): questions, grids and scoring rules.

Scoring is a pure function of the questions and the yes/no answers per tile: a question scores 1
if the answer is exactly "yes"; a question scores 0 if any parent scored 0 (dependency zeroing,
in proposition order); tile score = mean over the prompt's questions; prompt score = mean over
tiles; benchmark score = mean over prompts x 100. Level-2 category = the tuple's text before
"(", level-1 = its part before "-".

Category scores are computed consistently by default: every tile, dependency-adjusted. The
`official_compat` switch reproduces the official script instead: it skips the CSV's first data
row (whose prompt then fails on a dangling dependency and drops out, as the official script's
exception handler drops it), and its category numbers use the last tile's raw answers.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError

REQUIRED_COLUMNS = ("item_id", "proposition_id", "dependency", "tuple",
                    "question_natural_language")


@dataclass
class DPGQuestion:
    proposition_id: int
    parents: tuple[int, ...]  # 0 (no parent) removed
    tuple: str
    question: str

    @property
    def category(self) -> str:
        """Level-2 category, e.g. "entity - whole"."""
        return self.tuple.split("(")[0].strip()

    @property
    def category_l1(self) -> str:
        return self.category.split("-")[0].strip()


@dataclass
class DPGItem:
    item_id: str
    prompt: str
    questions: list[DPGQuestion] = field(default_factory=list)
    # Set when the questions cannot be scored (official-compat: a dangling dependency).
    unscorable: str | None = None


def read_questions(csv_path: Path, official_compat: bool = False) -> dict[str, list[DPGQuestion]]:
    """Questions per item id from a DPG-Bench CSV, checked (one clear line on anything wrong)."""
    from emf_bench.inputs import existing_file

    path = existing_file(csv_path, "DPG-Bench questions file")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise EmfBenchError(f"{path}: missing column(s) {', '.join(missing)} (DPG-Bench "
                                    f"CSV needs {', '.join(REQUIRED_COLUMNS)})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise EmfBenchError(f"cannot read DPG-Bench questions {path}: {err}") from None
    if official_compat:
        rows = rows[1:]  # the official script's `if i == 0: continue`
    out: dict[str, list[DPGQuestion]] = {}
    for line, row in enumerate(rows, start=3 if official_compat else 2):
        where = f"{path}:{line}"
        try:
            pid = int(str(row["proposition_id"]).strip())
            parents = tuple(int(p.strip()) for p in str(row["dependency"]).split(","))
        except (ValueError, AttributeError):
            raise EmfBenchError(f"{where}: proposition_id and dependency must be integers "
                                f"(got {row['proposition_id']!r}, {row['dependency']!r})"
                                ) from None
        if not row["item_id"] or not row["question_natural_language"]:
            raise EmfBenchError(f"{where}: empty item_id or question")
        out.setdefault(row["item_id"], []).append(
            DPGQuestion(pid, tuple(p for p in parents if p != 0), row["tuple"] or "",
                        row["question_natural_language"]))
    if not out:
        raise EmfBenchError(f"{path}: no questions")
    return out


def check_dependencies(questions: Sequence[DPGQuestion]) -> str | None:
    """The reason the questions cannot be scored (a proposition id used twice, a question that
    depends on itself, on a missing proposition or, through others, on itself), or None."""
    ids = [q.proposition_id for q in questions]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        return f"proposition id(s) {', '.join(map(str, twice))} used twice (duplicated)"
    parents = {q.proposition_id: q.parents for q in questions}
    for q in questions:
        if q.proposition_id in q.parents:
            return f"proposition {q.proposition_id} depends on itself"
        dangling = [p for p in q.parents if p not in parents]
        if dangling:
            return (f"proposition {q.proposition_id} depends on missing proposition(s) "
                    f"{', '.join(map(str, dangling))} (dangling dependency)")
    cycle = _cycle(parents)
    return f"dependency cycle {' -> '.join(map(str, cycle))}" if cycle else None


def _cycle(parents: dict[int, tuple[int, ...]]) -> list[int] | None:
    """One dependency cycle (as the chain of ids, first id repeated at the end), or None."""
    state: dict[int, str] = {}

    def visit(node: int, path: list[int]) -> list[int] | None:
        state[node] = "open"
        for parent in parents[node]:
            if state.get(parent) == "open":
                return [*path[path.index(parent):], parent]
            if parent not in state and (found := visit(parent, [*path, parent])):
                return found
        state[node] = "done"
        return None

    for node in parents:
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def read_prompts(folder: Path) -> dict[str, str]:
    """DPG-Bench prompt files: `<item_id>.txt`, one prompt each."""
    from emf_bench.inputs import read_prompt_folder

    return read_prompt_folder(folder, "DPG-Bench prompt folder")


def build_items(prompts: dict[str, str], questions: dict[str, list[DPGQuestion]],
                where: str = "DPG-Bench", strict: bool = True) -> list[DPGItem]:
    """Items with their questions. Without `strict` (official-compat), an item whose questions
    cannot be scored is kept and marked unscorable instead of failing the run."""
    items = []
    for item_id, prompt in prompts.items():
        qs = questions.get(item_id)
        if not qs:
            raise EmfBenchError(f"{where}: prompt {item_id!r} has no questions in the CSV")
        reason = check_dependencies(qs)
        if reason and strict:
            raise EmfBenchError(f"{where}: item {item_id!r}: {reason}")
        items.append(DPGItem(item_id, prompt, sorted(qs, key=lambda q: q.proposition_id),
                             unscorable=reason))
    orphans = sorted(set(questions) - set(prompts))
    if orphans:
        from emf_bench.progress import note

        note(f"{where}: {len(orphans)} item(s) with questions but no prompt file are not "
             f"evaluated: {', '.join(orphans[:5])}{' ...' if len(orphans) > 5 else ''}")
    return items


def split_grid(image: np.ndarray, where: str = "image") -> list[np.ndarray]:
    """DPG-Bench's 2x2 grid (no padding) -> four (R, R, 3) tiles in row-major order."""
    h, w = image.shape[:2]
    if h != w or h % 2:
        raise EmfBenchError(f"{where}: a DPG-Bench grid must be a 2R x 2R square, got {w}x{h}")
    r = h // 2
    return [image[:r, :r], image[:r, r:], image[r:, :r], image[r:, r:]]


def adjusted_scores(questions: Sequence[DPGQuestion], answers: Sequence[str]) -> list[float]:
    """Per question: 1.0 for exactly "yes", then 0 where any parent scored 0 (in order)."""
    raw = {q.proposition_id: float(a == "yes") for q, a in zip(questions, answers, strict=True)}
    scores = dict(raw)
    for q in questions:
        if any(scores.get(p, 0.0) == 0.0 for p in q.parents):
            scores[q.proposition_id] = 0.0
    return [scores[q.proposition_id] for q in questions]


def score_tile(questions: Sequence[DPGQuestion], answers: Sequence[str]) -> dict[str, Any]:
    scores = adjusted_scores(questions, answers)
    return {"answers": list(answers), "scores": scores,
            "score": sum(scores) / len(scores) if scores else float("nan")}


def summarize(items: Sequence[DPGItem], tiles: dict[str, list[dict[str, Any]]],
              official_compat: bool = False) -> dict[str, Any]:
    """Benchmark, level-1 and level-2 scores (x 100) from per-item tile results."""
    prompt_scores = []
    l1: dict[str, list[float]] = {}
    l2: dict[str, list[float]] = {}
    skipped = []
    for item in items:
        results = tiles.get(item.item_id)
        if item.unscorable or not results:
            skipped.append(item.item_id)
            continue
        prompt_scores.append(float(np.mean([t["score"] for t in results])))
        # Consistent: all tiles, dependency-adjusted. Official: last tile, raw answers.
        used = [results[-1]] if official_compat else results
        for tile in used:
            if tile.get("error"):  # an image that could not be scored: every question fails
                values = [0.0] * len(item.questions)
            else:
                values = [float(a == "yes") for a in tile["answers"]] if official_compat \
                    else tile["scores"]
            for q, value in zip(item.questions, values, strict=True):
                l2.setdefault(q.category, []).append(value)
                l1.setdefault(q.category_l1, []).append(value)
    mean = lambda v: float(np.mean(v) * 100) if v else float("nan")  # noqa: E731
    return {"overall": mean(prompt_scores), "prompts": len(prompt_scores),
            "skipped": skipped, "level1": {k: mean(v) for k, v in sorted(l1.items())},
            "level2": {k: mean(v) for k, v in sorted(l2.items())},
            "official_compat": official_compat}
