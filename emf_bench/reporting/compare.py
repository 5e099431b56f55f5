"""Several run directories in one report and one table: `emf-bench report RUN RUN ... --out F`.

Every evaluation summary of every run becomes rows keyed by run, model, the generator's weights
and revision, emf-bench's commit and version, and the settings. Rows meet in one table and one
score-vs-steps plot only when they were scored alike: the same benchmark, prompts source, scorer
(detector or VQA model, official or not), scoring rules and subset. Anything else is kept apart
in its own group, and the report says why. What cannot be read (not a run directory, a newer
schema, a broken summary) is named and skipped; only when nothing is left is it an error.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from emf_bench.errors import EmfBenchError

COLUMNS = ("group", "run", "model", "benchmark", "steps", "metric", "value", "backend",
           "official_backend", "subset", "suite_source", "generator_weights",
           "generator_revision", "commit", "dirty", "emf_bench_version", "settings",
           "provenance")


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """What must be equal for two summaries' scores to be compared (besides the prompts'
    source, which files from before it was recorded lack: see `_group`)."""
    return {"benchmark": summary["benchmark"], "scorer": summary.get("scorer"),
            "rules": (summary.get("settings") or {}).get("rules"),
            "subset": summary.get("subset")}


def _groups(table: pd.DataFrame) -> pd.Series:
    """A group name per row: rows of one comparable key, split by prompts source where two
    recorded sources differ (a file without one then goes with neither)."""
    names = pd.Series("", index=table.index)
    counts: dict[str, int] = {}
    for key, part in table.groupby("comparable", sort=False):
        benchmark = json.loads(key)["benchmark"]
        known = part["suite_source"].dropna().unique()
        splits = [(part, None)] if len(known) <= 1 else [
            (part[part["suite_source"] == k], k) for k in known] + [
            (part[part["suite_source"].isna()], "unrecorded")]
        for rows, _ in splits:
            if rows.empty:
                continue
            counts[benchmark] = counts.get(benchmark, 0) + 1
            names[rows.index] = f"{benchmark} #{counts[benchmark]}"
    return names


def _origin(summary: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """Commit and version from the summary's provenance, else (older files) the manifest."""
    prov = summary.get("provenance")
    if prov:
        git = prov.get("git") or {}
        return {"commit": git.get("commit"), "dirty": git.get("dirty"),
                "emf_bench_version": prov.get("version"), "provenance": "in file"}
    entries = manifest.get("invocations") or [{}]
    git = entries[-1].get("git") or {}
    return {"commit": git.get("commit"), "dirty": git.get("dirty"),
            "emf_bench_version": (entries[-1].get("versions") or {}).get("emf-bench"),
            "provenance": "from the run's manifest (file predates provenance)"}


def read_results_file(file: Path, problems: list[str]) -> dict[str, Any] | None:
    """A results file (summary, scores) of this schema or older, or None with the reason in
    `problems` (unreadable, or of a newer schema)."""
    from emf_bench.rundir import RESULTS_SCHEMA

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        problems.append(f"{file}: unreadable ({type(err).__name__}: {err})")
        return None
    version = (data.get("provenance") or {}).get("schema_version", 0) \
        if isinstance(data, dict) else None
    if not isinstance(version, int) or version > RESULTS_SCHEMA:
        problems.append(f"{file}: results schema {version!r} is newer than this emf-bench "
                        f"reads ({RESULTS_SCHEMA}); upgrade to include it")
        return None
    return data


def read_runs(runs: list[Path]) -> tuple[pd.DataFrame, list[dict[str, Any]], list[str]]:
    """(long table, per-run descriptions, problems) over the run directories."""
    from emf_bench.evaluation.runner import summary_table
    from emf_bench.rundir import read_manifest

    frames, described, problems = [], [], []
    names = _run_names(runs)
    for run, name in zip(runs, names, strict=True):
        try:
            manifest = read_manifest(run)
        except EmfBenchError as err:
            problems.append(f"{run}: {str(err).splitlines()[0]}")
            continue
        count = 0
        for file in sorted(Path(run).glob("evals/*/*/steps-*/summary.json")):
            summary = read_results_file(file, problems)
            if summary is None:
                continue
            try:
                table = summary_table([summary])
            except (OSError, ValueError, KeyError, TypeError, EmfBenchError) as err:
                problems.append(f"{file}: unreadable ({type(err).__name__}: {err})")
                continue
            generator = summary.get("generator") or {}
            key = json.dumps(_comparable(summary), sort_keys=True, default=str)
            table = table.assign(
                run=name, comparable=key,
                suite_source=(summary.get("suite") or {}).get("suite_source"),
                generator_weights=generator.get("weights"),
                generator_revision=generator.get("revision"),
                settings=json.dumps(summary.get("settings"), sort_keys=True),
                **_origin(summary, manifest))
            frames.append(table)
            count += 1
        if count == 0:
            problems.append(f"{run}: no evaluation summaries (evals/*/*/steps-*/summary.json)")
        described.append({"name": name, "path": str(Path(run).resolve()), "summaries": count,
                          "commands": [e.get("command") for e in manifest.get("invocations", [])]})
    if not frames:
        raise EmfBenchError("nothing to compare: " + "; ".join(problems or ["no runs given"]))
    table = pd.concat(frames, ignore_index=True)
    table["group"] = _groups(table)
    return table, described, problems


def _run_names(runs: list[Path]) -> list[str]:
    """Each run's folder name, made unique with its parent where two share one."""
    names = [Path(r).resolve().name for r in runs]
    return [f"{Path(r).resolve().parent.name}/{n}" if names.count(n) > 1 else n
            for r, n in zip(runs, names, strict=True)]


def compare_runs(runs: list[Path], out: Path) -> tuple[Path, list[str]]:
    """Write `out` (HTML) and beside it `<stem>/comparison.csv|parquet` and one plot a group;
    return the HTML path and what could not be read."""
    from emf_bench.reporting import plots
    from emf_bench.reporting.output import data_uri, html_table, render, wide, write_table
    from emf_bench.storage import atomic_write_text, ensure_dir

    table, described, problems = read_runs(runs)
    folder = ensure_dir(out.parent / out.stem, "comparison folder")
    write_table(table[list(COLUMNS)], folder, "comparison")
    sections = []
    for group, part in table.groupby("group", sort=True):
        comparable = {**json.loads(part["comparable"].iloc[0]), "suite_source": ", ".join(
            sorted(part["suite_source"].dropna().unique()))}
        labelled = part.assign(model=part["run"] + ": " + part["model"])
        metric = "overall" if "overall" in set(part["metric"]) else part["metric"].iloc[0]
        stem = hashlib.sha256(group.encode()).hexdigest()[:12]
        figure = plots.score_vs_steps(labelled, comparable["benchmark"],
                                      folder / f"steps-{stem}.png", metric)
        table_wide = wide(labelled.drop(columns=["run"]))
        sections.append({
            "group": group, "benchmark": comparable["benchmark"],
            "scorer": _scorer_words(comparable), "runs": sorted(part["run"].unique()),
            "commits": sorted({str(c)[:10] for c in part["commit"].dropna()}),
            "table": html_table(table_wide),
            "figure": data_uri(figure) if figure is not None else None})
    apart = [b for b, n in pd.Series([s["benchmark"] for s in sections]).value_counts().items()
             if n > 1]
    html = render({"runs": described, "problems": problems, "sections": sections,
                   "apart": apart, "folder": str(folder), "generated": _dt.datetime.now(
                       _dt.timezone.utc).isoformat(timespec="seconds")}, "compare.html.j2")
    atomic_write_text(out, html)
    return out, problems


def _scorer_words(comparable: dict[str, Any]) -> str:
    scorer = comparable.get("scorer") or {}
    backend = (scorer.get("detector") or scorer.get("vqa") or {}).get("name", "?")
    words = f"{backend} ({'official' if scorer.get('official') else 'NOT the official'} " \
            f"backend); prompts {comparable.get('suite_source') or 'unrecorded (older file)'}"
    if comparable.get("subset"):
        from emf_bench.evaluation.runner import subset_label

        words += f"; {subset_label(comparable['subset'])}"
    return words
