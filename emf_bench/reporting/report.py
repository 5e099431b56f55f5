"""`emf-bench report RUN_DIR`: one self-contained HTML file (images embedded, no network),
with the tables as CSV/Parquet and the figures as PNG beside it in <run>/report/.

Works on partial runs (a section without data says so) and on runs of `emf-bench eval` alone.
Everything user-supplied (prompts, encoder and model names, paths) is escaped by Jinja2's
autoescaping; measured values and paper references sit in separate, labelled columns.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import pandas as pd

from emf_bench.reporting import collect, output, plots, verdict
from emf_bench.storage import atomic_write_text, ensure_dir

FAILED_PER_MODEL = 6
SAMPLE_PROMPTS = 6


def _with_intervals(table: pd.DataFrame, evals: list[collect.Evaluation]) -> pd.DataFrame:
    """The long eval table with 95% bootstrap intervals on world/official GenEval overall."""
    table = table.copy()
    table["low"], table["high"] = float("nan"), float("nan")
    for e in evals:
        ci = e.intervals
        if not ci:
            continue
        mask = (table["model"] == e.model) & (table["benchmark"] == e.benchmark) & \
            (table["steps"] == e.steps)
        for metric, value in [("overall", ci), *ci["tasks"].items()]:
            row = mask & (table["metric"] == metric)
            table.loc[row, "low"], table.loc[row, "high"] = value["low"], value["high"]
    return table


def _samples(evals: list[collect.Evaluation]) -> list[dict[str, Any]]:
    """The same prompts at every step count, side by side, per model (GenEval suites)."""
    from emf_bench.images import read_image

    out = []
    by_model: dict[tuple[str, str], list[collect.Evaluation]] = {}
    for e in evals:
        if "tasks" in e.summary:
            by_model.setdefault((e.model, e.benchmark), []).append(e)
    for (model, benchmark), items in by_model.items():
        items = sorted(items, key=lambda e: e.steps)
        rows = items[0].rows
        chosen, seen = [], set()
        for r in rows:  # one prompt per task first, then more
            if r["tag"] not in seen and r.get("sample", 0) == 0:
                seen.add(r["tag"])
                chosen.append(r)
        strips = []
        for r in chosen[:SAMPLE_PROMPTS]:
            images, labels = [], []
            for e in items:
                file = e.folder / r["image"]
                if file.exists():
                    images.append(read_image(file))
                    labels.append(f"{e.steps} step{'s' if e.steps != 1 else ''}"
                                  if e.steps else "given")
            if images:
                strips.append({"prompt": r["prompt"], "tag": r["tag"],
                               "image": output.data_uri(plots.sample_strip(images, labels))})
        if strips:
            out.append({"model": model, "benchmark": benchmark, "strips": strips})
    return out


def _failures(evals: list[collect.Evaluation]) -> list[dict[str, Any]]:
    """Failed GenEval images at the fewest steps, with detections drawn and the reason."""
    from emf_bench.images import read_image

    out, done = [], set()
    for e in sorted(evals, key=lambda e: e.steps):
        if "tasks" not in e.summary or (e.model, e.benchmark) in done:
            continue
        done.add((e.model, e.benchmark))
        failed = [r for r in e.rows if not r["correct"] and not r.get("error")]
        panels = []
        for r in failed[:FAILED_PER_MODEL]:
            file = e.folder / r["image"]
            if file.exists():
                panels.append({"prompt": r["prompt"], "reason": r["reason"],
                               "image": output.data_uri(plots.detections_overlay(
                                   read_image(file), r.get("detections", {}), r["reason"]))})
        if panels:
            out.append({"model": e.model, "benchmark": e.benchmark, "steps": e.steps,
                        "failed": len(failed), "total": len(e.rows), "panels": panels})
    return out


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write <run>/report.html and <run>/report/ (tables, figures); return the HTML path."""
    from emf_bench.inputs import existing_dir
    from emf_bench.resources import paper_reference
    from emf_bench.rundir import read_manifest

    run = existing_dir(run_dir, "run directory")
    manifest = read_manifest(run)  # not a run dir, or a newer one: one clear line
    folder = ensure_dir(run / "report", "report directory")
    missing: list[str] = []

    encoders = collect.encoder_table(run)
    probe_items = collect.probes(run)
    probe_tab = collect.probe_table(probe_items)
    evals = collect.evaluations(run)
    from emf_bench.evaluation.runner import summary_table

    eval_tab = _with_intervals(summary_table([e.summary for e in evals]), evals)
    study = collect.study_table(run, encoders, evals)
    correlations = {x: collect.rank_correlation(study, x)
                    for x in ("discriminability", "disentanglement")}
    for name, table in (("encoders", encoders), ("probes", probe_tab), ("evals", eval_tab),
                        ("study", study)):
        if table.empty:
            missing.append(name)
        else:
            output.write_table(table, folder, name)

    figures: dict[str, str] = {}
    made = {
        "training": plots.training_curves(probe_items, folder / "training.png"),
        **{f"steps-{b}": plots.score_vs_steps(eval_tab, b, folder / f"steps-{b}.png")
           for b in sorted(eval_tab["benchmark"].unique())},
        **_breakdowns(eval_tab, folder),
        **{f"study-{x}": plots.study_scatter(study, x, correlations[x],
                                             folder / f"study-{x}.png")
           for x in ("discriminability", "disentanglement") if not study.empty},
    }
    for key, path in made.items():
        if path is not None:
            figures[key] = output.data_uri(path)

    labels = sorted({_backend_label(e.summary) for e in evals})
    labels += sorted({f"discriminability image features: {f} (not DINOv3 on COCO)"
                      for f in encoders.get("image_features", pd.Series(dtype=str)).dropna()})
    if probe_items:
        labels.append("generators are emf-bench probes trained on the synthetic world, not "
                      "real text-to-image models")
    reference = paper_reference()
    paper_geneval = pd.DataFrame(
        [{"model": r["model"], "steps": r["steps"],
          **dict(zip(reference["geneval"]["tasks"], r["scores"], strict=True))}
         for r in reference["geneval"]["results"]])

    context = {
        "title": f"emf-bench report: {run.resolve().name}",
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run": str(run.resolve()),
        "invocations": manifest.get("invocations", []),
        "study_meta": _study_meta(run),
        "missing": missing,
        "encoders": output.html_table(encoders),
        "probes": output.html_table(probe_tab, "{:.4g}"),
        "headline": output.html_table(headline(study)),
        "paper_ratio": paper_step_ratio() if not study.empty else "",
        "evals": [(b, output.html_table(output.wide(eval_tab[eval_tab["benchmark"] == b])))
                  for b in sorted(eval_tab["benchmark"].unique())],
        "checks": verdict.checks(study, evals),
        "unfair": verdict.unequal_training(probe_tab),
        "correlations": correlations,
        "figures": figures,
        "samples": _samples(evals),
        "failures": _failures(evals),
        "labels": labels,
        "paper_geneval": output.html_table(paper_geneval, "{:.2f}"),
        "paper_source": reference.get("source", ""),
    }
    html = output.render(context)
    target = out or run / "report.html"
    atomic_write_text(target, html)
    return target


def _breakdowns(eval_tab: pd.DataFrame, folder: Path) -> dict[str, Path | None]:
    """Figures of the parts each benchmark declares (`breakdowns`: (metric prefix, parts,
    value))."""
    from emf_bench.evaluation.benchmarks import benchmark_class

    return {f"parts-{b}-{prefix}": plots.breakdown(eval_tab, b, prefix, parts, value,
                                                   folder / f"{b}-by-{prefix}.png")
            for b in sorted(eval_tab["benchmark"].unique())
            for prefix, parts, value in getattr(benchmark_class(b), "breakdowns", ())}


def _backend_label(summary: dict[str, Any]) -> str:
    scorer = summary.get("scorer", {})
    backend = scorer.get("detector") or scorer.get("vqa") or {}
    official = "official" if scorer.get("official") else "NOT the official backend"
    return f"{summary['benchmark']}: scored with {backend.get('name')} ({official})"


def headline(study: pd.DataFrame) -> pd.DataFrame:
    """Per probe: 1- and 4-step scores with intervals, their ratio, the encoder's scores."""
    if study.empty:
        return study
    keep = study[study["steps"].isin([1, 4])]
    wide = keep.pivot_table(index=["encoder", "objective"], columns="steps",
                            values=["score", "low", "high"]).reset_index()
    out = pd.DataFrame({"encoder": wide["encoder"], "objective": wide["objective"]})
    for k in (1, 4):
        if ("score", k) in wide:
            out[f"{k}-step"] = [f"{s:.3f} [{lo:.3f}, {hi:.3f}]" for s, lo, hi in zip(
                wide[("score", k)], wide[("low", k)], wide[("high", k)], strict=True)]
    if ("score", 1) in wide and ("score", 4) in wide:  # a figure to improve, not a bar
        out["1-step / 4-step"] = [round(a / b, 2) if b else None for a, b in zip(
            wide[("score", 1)], wide[("score", 4)], strict=True)]
    props = study.drop_duplicates("encoder").set_index("encoder")
    out["discriminability"] = out["encoder"].map(props["discriminability"])
    out["disentanglement"] = out["encoder"].map(props["disentanglement"])
    return out


def paper_step_ratio() -> str:
    """The paper's EMF 1-step / 4-step GenEval ratio, in words (a reference, not a
    measurement)."""
    from emf_bench.resources import paper_reference

    reference = paper_reference()
    scores = {r["steps"]: r["scores"][-1] for r in reference["geneval"]["results"]
              if r["model"].startswith("EMF")}
    return (f"paper reference, not measured here: EMF scored {scores[1]:.2f} at 1 step and "
            f"{scores[4]:.2f} at 4 on GenEval (1-step / 4-step {scores[1] / scores[4]:.2f}; "
            f"{reference.get('source', 'the EMF paper')})")


def _study_meta(run: Path) -> dict[str, Any] | None:
    file = run / "study.json"
    return collect.read_json(file) if file.exists() else None
