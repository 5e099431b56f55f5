"""Benchmark suites: GenEval metadata and DPG-Bench prompts with questions, from the official
files (user paths) or from the synthetic world.

The official files are never bundled: `--geneval-metadata evaluation_metadata.jsonl`,
`--dpg-prompts prompts/` and `--dpg-csv dpg_bench.csv` point at a user's copies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError, unknown_name
from emf_bench.evaluation.dpg import DPGItem, DPGQuestion, build_items, read_prompts, read_questions
from emf_bench.evaluation.geneval import COLORS, TASKS
from emf_bench.spatial import RELATIONS

BENCHMARKS = ("geneval", "dpg", "world-geneval", "world-dpg")


@dataclass
class GenEvalSuite:
    name: str  # "geneval" or "world-geneval"
    rows: list[dict[str, Any]]
    source: str

    kind = "geneval"

    def __len__(self) -> int:  # prompts
        return len(self.rows)


@dataclass
class DPGSuite:
    name: str  # "dpg" or "world-dpg"
    items: list[DPGItem]
    source: str
    official_compat: bool = False

    kind = "dpg"

    def __len__(self) -> int:  # prompts
        return len(self.items)


@dataclass
class SuiteSources:
    """Where the official files are (None: not given)."""

    geneval_metadata: Path | None = None
    dpg_prompts: Path | None = None
    dpg_csv: Path | None = None
    world: dict[str, Any] = field(default_factory=dict)
    official_compat: bool = False


def _check_clause(clause: Any, where: str, position_allowed: int | None) -> None:
    if not isinstance(clause, dict):
        raise EmfBenchError(f"{where}: a clause must be an object, got {clause!r}")
    if not isinstance(clause.get("class"), str) or not clause["class"]:
        raise EmfBenchError(f"{where}: clause without a 'class' name: {clause!r}")
    count = clause.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise EmfBenchError(f"{where}: clause {clause['class']!r} needs an integer count >= 1")
    if "color" in clause and clause["color"] not in COLORS:
        raise EmfBenchError(f"{where}: unknown colour {clause['color']!r}; GenEval's colours "
                            f"are {', '.join(COLORS)}")
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
    if row.get("tag") not in TASKS:
        raise unknown_name(f"GenEval tag at {where}:", str(row.get("tag")), TASKS)
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
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EmfBenchError(f"GenEval metadata {path} does not exist") from None
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


def load_suite(name: str, sources: SuiteSources) -> GenEvalSuite | DPGSuite:
    """A benchmark by name: geneval, dpg (official files), world-geneval, world-dpg."""
    if name not in BENCHMARKS:
        raise unknown_name("benchmark", name, BENCHMARKS)
    if name.startswith("world-"):
        from emf_bench.world import World, WorldConfig

        world = World(WorldConfig.from_dict(sources.world))
        if name == "world-geneval":
            return GenEvalSuite(name, world.geneval_suite(), "emf-bench world")
        dense = world.dense_suite()
        questions: dict[str, list[DPGQuestion]] = {}
        for row in dense.questions:
            questions.setdefault(row["item_id"], []).append(DPGQuestion(
                int(row["proposition_id"]),
                tuple(int(p) for p in row["dependency"].split(",") if int(p) != 0),
                row["tuple"], row["question_natural_language"]))
        return DPGSuite(name, build_items(dense.prompts, questions, "world-dpg"),
                        "emf-bench world")
    if name == "geneval":
        if sources.geneval_metadata is None:
            raise EmfBenchError("--benchmark geneval needs --geneval-metadata PATH (GenEval's "
                                "prompts/evaluation_metadata.jsonl)")
        return GenEvalSuite(name, load_geneval_metadata(sources.geneval_metadata),
                            str(sources.geneval_metadata))
    if sources.dpg_prompts is None or sources.dpg_csv is None:
        raise EmfBenchError("--benchmark dpg needs --dpg-prompts FOLDER and --dpg-csv FILE "
                            "(DPG-Bench's prompts/ and dpg_bench.csv)")
    prompts = read_prompts(sources.dpg_prompts)
    questions = read_questions(sources.dpg_csv, sources.official_compat)
    items = build_items(prompts, questions, str(sources.dpg_csv),
                        strict=not sources.official_compat)
    return DPGSuite(name, items, str(sources.dpg_prompts), sources.official_compat)
