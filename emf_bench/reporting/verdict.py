"""The study's verdict: the effects the toolkit exists to measure, each with its evidence.

Encoders are compared as paired differences: two probes were evaluated on the same prompts
with the same seeds and images per prompt, so each (prompt, sample) gives one difference of
correctness, and the bootstrap resamples prompts (stratified by task, as the GenEval score
averages tasks) of those differences. An effect is "shown" when the 95% interval of its paired
difference lies above zero. Pairing removes the prompt-to-prompt variance the two scores
share, so it separates probes whose separate intervals overlap.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from emf_bench.evaluation.benchmarks.geneval import bootstrap_geneval
from emf_bench.reporting import collect

BENCHMARK = "world-geneval"
NOT_SHOWN = "not shown within the 95% intervals at this budget"
STEP_SPREAD = 0.10  # probes whose step counts differ more than this are compared unfairly
RHO_BAR = 0.8  # the rank correlation the study looks for between discriminability and score
BINDING = ("position", "color_attr")  # the tasks a bag of words cannot tell apart


def paired_difference(a: collect.Evaluation, b: collect.Evaluation,
                      task: str | tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """a's score minus b's, over the (prompt, sample) pairs both hold (of one task, of several,
    as the mean of their scores, or of all), with a paired bootstrap interval over prompts;
    None when they share no pair."""
    tasks = (task,) if isinstance(task, str) else task

    def key(r):
        return r["tag"], r.get("prompt_index", r.get("prompt")), r.get("sample", 0)

    def wanted(r) -> bool:
        return tasks is None or r["tag"] in tasks

    theirs = {key(r): float(r["correct"]) for r in b.rows if wanted(r)}
    diffs = [{"tag": r["tag"], "prompt_index": key(r)[1],
              "correct": float(r["correct"]) - theirs[key(r)]}
             for r in a.rows if wanted(r) and key(r) in theirs]
    if not diffs:
        return None
    return {**bootstrap_geneval(diffs), "pairs": len(diffs)}


def _fmt_diff(d: dict[str, Any] | None) -> str:
    if d is None:
        return "no shared prompts"
    return f"{d['score']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def _fmt(r: pd.Series, col: str = "score") -> str:
    low, high = (r["low"], r["high"]) if col == "score" else (r[f"{col}_low"], r[f"{col}_high"])
    return f"{r[col]:.2f} [{low:.2f}, {high:.2f}]"


def checks(study: pd.DataFrame, evals: list[collect.Evaluation]) -> list[dict[str, str]]:
    """Each effect as {claim, evidence, verdict}; the verdicts rest on paired differences at 1
    step (see the module docstring)."""
    out: list[dict[str, str]] = []
    if study.empty:
        return out
    one = study[study["steps"] == 1]
    at_one = {(e.generator.get("encoder"), e.generator.get("objective")): e for e in evals
              if e.benchmark == BENCHMARK and e.steps == 1 and e.generator.get("kind") == "probe"}

    def row(encoder: str, objective: str):
        part = one[(one["encoder"] == encoder) & (one["objective"] == objective)]
        return None if part.empty else part.iloc[0]

    def paired(a: tuple[str, str], b: tuple[str, str], task: str | None = None):
        return paired_difference(at_one[a], at_one[b], task) \
            if a in at_one and b in at_one else None

    def verdict(d) -> str:
        return "shown" if d is not None and d["low"] > 0 else NOT_SHOWN

    label = ("class-label", "meanflow")
    mf = one[one["objective"] == "meanflow"].sort_values("score", ascending=False)
    if row(*label) is not None and len(mf) > 1:
        rank = list(mf["encoder"]).index("class-label") + 1
        diffs = {e: paired(label, (e, "meanflow")) for e in mf["encoder"] if e != "class-label"}
        # Near the top: first or second, no probe above it beyond the paired interval, and
        # above at least one beyond it (all tied is not "near the top").
        beaten = any(d is not None and d["high"] < 0 for d in diffs.values())
        beats = any(d is not None and d["low"] > 0 for d in diffs.values())
        out.append({"claim": "class-label at or near the top at 1 step",
                    "evidence": f"rank {rank} of {len(mf)} MeanFlow probes: " + ", ".join(
                        f"{r['encoder']} {_fmt(r)}" for _, r in mf.iterrows())
                    + "; class-label minus " + ", ".join(
                        f"{e} {_fmt_diff(d)}" for e, d in diffs.items()),
                    "verdict": "shown" if rank <= 2 and beats and not beaten else
                    "not shown" if rank > 2 or beaten else NOT_SHOWN})
    bow = ("bag-of-words", "meanflow")
    if row(*label) is not None and row(*bow) is not None:
        a, b = row(*label), row(*bow)
        binding = [task for task in BINDING if task in a and task in b and pd.notna(a[task])]
        for task in binding:
            d = paired(label, bow, task)
            out.append({"claim": f"class-label above bag-of-words on {task} at 1 step",
                        "evidence": f"class-label {_fmt(a, task)} vs bag-of-words "
                                    f"{_fmt(b, task)}; paired difference {_fmt_diff(d)}",
                        "verdict": verdict(d)})
        if len(binding) > 1:  # the mean of the binding tasks: more prompts, more power
            d = paired(label, bow, tuple(binding))
            out.append({"claim": f"class-label above bag-of-words on the binding tasks "
                                 f"({' and '.join(binding)} together) at 1 step",
                        "evidence": f"paired difference of their mean score {_fmt_diff(d)} "
                                    f"over {d['pairs'] if d else 0} (prompt, image) pairs",
                        "verdict": verdict(d)})
    for _, base in one[one["objective"] == "flow-matching"].iterrows():
        baseline = (base["encoder"], "flow-matching")
        for _, r in mf.iterrows():
            d = paired((r["encoder"], "meanflow"), baseline)
            out.append({"claim": f"MeanFlow probe of {r['encoder']} ahead of the "
                                 f"flow-matching baseline ({base['encoder']}) at 1 step",
                        "evidence": f"MeanFlow {_fmt(r)} vs flow matching {_fmt(base)}; "
                                    f"paired difference {_fmt_diff(d)}",
                        "verdict": verdict(d)})
    corr = collect.rank_correlation(study, "discriminability")
    if corr and corr.get("rho") is not None:
        out.append({"claim": f"the 1-step score rises with discriminability (Spearman rho at "
                             f"least {RHO_BAR})",
                    "evidence": f"rho = {corr['rho']:.2f} over {corr['n']} MeanFlow probes "
                                f"(exact permutation p = {corr['p']:.3f})",
                    # (0.8 exactly for four probes one swap apart, computed as 0.7999...)
                    "verdict": "shown" if corr["rho"] >= RHO_BAR - 1e-9 else "not shown"})
    return out


def unequal_training(probes: pd.DataFrame) -> str | None:
    """A warning when the study's probes trained step counts more than 10% apart (time budgets
    on a slow or busy machine): their comparison is unfair."""
    steps = probes.dropna(subset=["steps"]) if "steps" in probes else probes
    if len(steps) < 2 or steps["steps"].min() <= 0:
        return None
    low, high = steps["steps"].min(), steps["steps"].max()
    if high <= low * (1 + STEP_SPREAD):
        return None
    each = ", ".join(f"{r['encoder']} {r['objective']} {int(r['steps'])}"
                     for _, r in steps.iterrows())
    return (f"unfair comparison: the probes trained {int(low)} to {int(high)} steps "
            f"({each}), more than {STEP_SPREAD:.0%} apart; give them a step budget "
            f"(--budget 1200steps) for verdicts that mean something")
