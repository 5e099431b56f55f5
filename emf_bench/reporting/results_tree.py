"""Runs exported as a results tree in the spirit of MTEB's results repository, one folder per
model and revision, readable and mergeable without emf-bench:

    <out>/<model>/<revision>/model_meta.json      what the model is (generator or encoder card)
    <out>/<model>/<revision>/<benchmark>.json     its scores, one entry per way of scoring
    <out>/<encoder>/<revision>/encoder_scores.json

`emf-bench report RUN... --results DIR` writes it. Exports from many runs and machines merge
into one tree: a benchmark file holds one entry per scoring (scorer, rules, prompts, subset and
settings alike), and within an entry one summary per step count; a newer run replaces a step
count it measured again and keeps the others. Files are written atomically; a file that is not
such a tree's (or of a newer schema) is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError

NO_REVISION = "no_revision_available"  # MTEB's word for a model without one
TREE_SCHEMA = 1


def revision(description: dict[str, Any]) -> str:
    """A folder name for a model's revision: its Hub commit, else its weights' hash (a probe,
    a local folder: its first 16 digits), else the start of its weights signature and a hash
    of all of it (a built-in encoder), else `no_revision_available`."""
    from emf_bench.evaluation.runner import model_slug

    rev = description.get("revision")
    weights = str(description.get("weights") or "")
    if rev and rev != "main":
        return model_slug(str(rev))
    if "@" in weights:  # hub:<id>@<commit>
        return model_slug(weights.rsplit("@", 1)[1])
    if re.fullmatch(r"[0-9a-f]{16,}", weights):  # a probe's or a folder's hash
        return weights[:16]
    if weights:  # a readable start and a hash of the whole: two signatures never share one
        digest = hashlib.sha256(weights.encode()).hexdigest()[:10]
        return f"{model_slug(weights)[:28].rstrip('-')}-{digest}"
    return NO_REVISION


def _entry_key(summary: dict[str, Any]) -> dict[str, Any]:
    """What two summaries share when their scores belong in one entry."""
    return {"scorer": summary.get("scorer"), "suite": summary.get("suite"),
            "subset": summary.get("subset"), "settings": summary.get("settings") or {}}


def _read(file: Path) -> dict[str, Any] | None:
    if not file.exists():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise EmfBenchError(f"results tree file {file} is unreadable ({err}); move it away "
                            f"and export again") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(version, int) or version > TREE_SCHEMA:
        raise EmfBenchError(f"{file} is not an emf-bench results tree file of schema "
                            f"{TREE_SCHEMA} or older (schema_version {version!r})")
    return data


def _merge(file: Path, head: dict[str, Any], summaries: list[dict[str, Any]]) -> None:
    from emf_bench.storage import atomic_write_json

    data = _read(file) or {"schema_version": TREE_SCHEMA, **head, "entries": []}
    entries = data["entries"]
    for s in summaries:
        key = _entry_key(s)
        same = json.dumps(key, sort_keys=True)
        entry = next((e for e in entries if json.dumps(e["key"], sort_keys=True) == same), None)
        if entry is None:
            entry = {"key": key, "official": bool((s.get("scorer") or {}).get("official")),
                     "steps": {}}
            entries.append(entry)
        body = {k: v for k, v in s.items() if k not in ("generator", "scorer", "suite",
                                                          "subset", "settings")}
        entry["steps"][str(s["steps"])] = body
        entry["steps"] = dict(sorted(entry["steps"].items(), key=lambda kv: int(kv[0])))
    atomic_write_json(file, data)


def export(runs: list[Path], out: Path) -> tuple[list[Path], list[str]]:
    """Write (or merge into) the results tree at `out` from the runs' evaluation summaries and
    encoder scores; return the files written and what could not be read."""
    from emf_bench.evaluation.runner import generator_identity, model_slug
    from emf_bench.reporting.compare import read_results_file
    from emf_bench.storage import atomic_write_json, ensure_dir

    tasks: dict[Path, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    metas: dict[Path, dict[str, Any]] = {}
    problems: list[str] = []
    for run in runs:
        for file in sorted(Path(run).glob("evals/*/*/steps-*/summary.json")):
            s = read_results_file(file, problems)
            if s is None:
                continue
            generator = s.get("generator") or {"name": s["model"]}
            rev = revision(generator)
            folder = out / model_slug(s["model"]) / rev
            metas[folder] = {"schema_version": TREE_SCHEMA, "name": s["model"],
                             "kind": generator.get("kind"), "revision": rev,
                             "generator": generator_identity(generator)}  # no paths
            suffix = (s.get("subset") or {}).get("suffix", "")
            task = folder / f"{model_slug(s['benchmark'])}{suffix}.json"
            tasks.setdefault(task, ({"model": s["model"], "benchmark": s["benchmark"],
                                     "revision": rev}, []))[1].append(s)
        for file in sorted(Path(run).glob("encoders/*/scores.json")):
            s = read_results_file(file, problems)
            if s is None:
                continue
            rev = revision({"weights": s.get("weights")})
            folder = out / model_slug(s["encoder"]) / rev
            metas[folder] = {"schema_version": TREE_SCHEMA, "name": s["encoder"],
                             "kind": "encoder", "revision": rev, "card": s.get("card"),
                             "weights": s.get("weights")}
            tasks[folder / "encoder_scores.json"] = ({}, [s])
    if not metas:
        raise EmfBenchError("nothing to export: no evaluation summaries or encoder scores in "
                            + ", ".join(str(r) for r in runs) + "".join(f"; {p}" for p in problems))
    ensure_dir(out, "--results folder")
    written = []
    for folder, meta in sorted(metas.items()):
        ensure_dir(folder, "results tree folder")
        written.append(atomic_write_json(folder / "model_meta.json", meta))
    for file, (head, summaries) in sorted(tasks.items()):
        if file.name == "encoder_scores.json":  # an encoder's scores: the newest one stands
            written.append(atomic_write_json(file, {"schema_version": TREE_SCHEMA,
                                                    **summaries[0]}))
        else:
            _merge(file, head, summaries)
            written.append(file)
    return written, problems
