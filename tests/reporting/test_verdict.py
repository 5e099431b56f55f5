"""The verdict's checks on synthetic studies: paired differences, binding tasks, rank
correlations, unequal training, bootstrap intervals."""

from pathlib import Path

import numpy as np
import pytest

from emf_bench.evaluation.benchmarks.geneval import bootstrap_geneval
from emf_bench.reporting import collect


def test_bootstrap_intervals_cover_the_score_and_shrink_with_more_prompts():
    rows = [{"tag": "a", "prompt_index": i, "correct": i % 2 == 0} for i in range(40)]
    small = bootstrap_geneval(rows[:10])
    large = bootstrap_geneval(rows)
    assert small["low"] <= small["score"] <= small["high"]
    assert large["high"] - large["low"] < small["high"] - small["low"]
    assert bootstrap_geneval(rows) == bootstrap_geneval(rows)  # seeded


def synthetic_study(correct: dict[tuple[str, str], object], prompts=40, tasks=("position",)):
    """A study table and its evaluations from per-probe correctness functions of the prompt."""
    import pandas as pd

    evals = []
    for (encoder, objective), fn in correct.items():
        rows = [{"tag": task, "prompt_index": i, "sample": 0, "correct": bool(fn(i))}
                for task in tasks for i in range(prompts)]
        e = collect.Evaluation(f"{encoder}-{objective}", "world-geneval", 1, Path("."),
                               {"tasks": {}, "overall": sum(r["correct"] for r in rows)
                                / len(rows)},
                               {"kind": "probe", "encoder": encoder, "objective": objective})
        e.__dict__["rows"] = rows
        evals.append(e)
    return collect.study_table(Path("."), pd.DataFrame(columns=collect.ENCODER_COLUMNS),
                               evals), evals


@pytest.mark.parametrize("correct, verdict", [
    ({"class-label": lambda i: i < 30, "minilm": lambda i: i < 20,  # first beyond the pairs
      "bag-of-words": lambda i: i < 10}, "shown"),
    ({"class-label": lambda i: False, "minilm": lambda i: False,  # all tied: nothing to show
      "bag-of-words": lambda i: False}, "not shown within the 95% intervals at this budget"),
    ({"class-label": lambda i: i % 2 == 0 or i < 3, "minilm": lambda i: i % 2 == 1,  # first,
      "bag-of-words": lambda i: i % 3 == 0}, "not shown within the 95% intervals at this "
     "budget"),  # but within the paired intervals of the others
    ({"class-label": lambda i: i < 30, "minilm": lambda i: i < 10,  # second, but beaten
      "bag-of-words": lambda i: True}, "not shown"),
    ({"class-label": lambda i: i < 10, "minilm": lambda i: i < 20,  # last
      "bag-of-words": lambda i: i < 30}, "not shown"),
])
def test_near_the_top_is_judged_on_paired_differences(correct, verdict):
    from emf_bench.reporting.verdict import checks

    study, evals = synthetic_study({(e, "meanflow"): f for e, f in correct.items()})
    (near_top,) = [c for c in checks(study, evals)
                   if c["claim"].startswith("class-label at or near")]
    assert near_top["verdict"] == verdict


def test_pairing_shows_a_difference_that_separate_intervals_hide():
    """Two probes that agree on most prompts and differ on a few, all one way: their separate
    intervals overlap, their paired difference's interval lies above zero."""
    from emf_bench.reporting.verdict import checks

    study, evals = synthetic_study({
        ("class-label", "meanflow"): lambda i: i % 2 == 0 or i % 4 == 1,
        ("bag-of-words", "meanflow"): lambda i: i % 2 == 0,
        ("class-label", "flow-matching"): lambda i: i % 2 == 0 and i > 10})
    one = study.set_index(["encoder", "objective"])
    assert one.loc[("class-label", "meanflow"), "low"] < \
        one.loc[("bag-of-words", "meanflow"), "high"]  # overlapping on their own
    by_claim = {c["claim"]: c for c in checks(study, evals)}
    assert by_claim["class-label above bag-of-words on position at 1 step"]["verdict"] == "shown"
    ahead = [c for claim, c in by_claim.items() if "flow-matching baseline" in claim]
    assert len(ahead) == 2 and [c["verdict"] for c in ahead] == ["shown", "shown"]
    assert "paired difference +0.40" in by_claim[
        "MeanFlow probe of class-label ahead of the flow-matching baseline (class-label) at 1 "
        "step"]["evidence"]


def test_binding_tasks_together_show_what_each_alone_does_not():
    """Three prompts of 40 per task where class-label binds and bag-of-words does not: too few
    for either task's interval, enough for the two tasks' mean."""
    from emf_bench.reporting.verdict import checks

    study, evals = synthetic_study({
        ("class-label", "meanflow"): lambda i: i % 2 == 0 or i in (1, 3, 5),
        ("bag-of-words", "meanflow"): lambda i: i % 2 == 0}, tasks=("position", "color_attr"))
    by_claim = {c["claim"]: c for c in checks(study, evals)}
    for task in ("position", "color_attr"):
        assert by_claim[f"class-label above bag-of-words on {task} at 1 step"]["verdict"] != \
            "shown"
    both = by_claim["class-label above bag-of-words on the binding tasks (position and "
                    "color_attr together) at 1 step"]
    assert both["verdict"] == "shown"
    assert "+0.07" in both["evidence"] and "80 (prompt, image) pairs" in both["evidence"]


def test_a_rank_correlation_of_exactly_the_bar_is_shown():
    """Four encoders one adjacent swap from discriminability's order: rho is 0.8 exactly (which
    scipy computes as 0.7999...)."""
    from emf_bench.reporting.verdict import checks

    scores = {"constant": 5, "bag-of-words": 25, "minilm": 20, "class-label": 30}
    study, evals = synthetic_study({(e, "meanflow"): (lambda i, k=k: i < k)
                                    for e, k in scores.items()})
    order = {"constant": 0.36, "bag-of-words": 0.67, "minilm": 0.72, "class-label": 0.76}
    study = study.assign(discriminability=study["encoder"].map(order))
    (rho,) = [c for c in checks(study, evals) if "Spearman" in c["claim"]]
    assert rho["verdict"] == "shown" and "rho = 0.80 over 4" in rho["evidence"]
    study = study.assign(discriminability=study["encoder"].map(
        {**order, "bag-of-words": 0.1}))  # bag-of-words two places off: rho 0.4
    (rho,) = [c for c in checks(study, evals) if "Spearman" in c["claim"]]
    assert rho["verdict"] == "not shown"


def test_unequal_step_counts_are_a_warning_with_each_probes_steps():
    import pandas as pd

    from emf_bench.reporting.verdict import unequal_training

    probes = pd.DataFrame({"encoder": ["class-label", "minilm", "class-label"],
                           "objective": ["meanflow", "meanflow", "flow-matching"],
                           "steps": [62, 329, 276]})
    warning = unequal_training(probes)
    assert "62 to 329 steps" in warning and "minilm meanflow 329" in warning
    assert unequal_training(probes.assign(steps=[1000, 1090, 1000])) is None


def test_rank_correlation_of_few_encoders_uses_the_exact_p_value():
    import pandas as pd

    study = pd.DataFrame({"steps": [1] * 3, "objective": ["meanflow"] * 3,
                          "discriminability": [0.6, 0.7, 0.8], "score": [0.1, 0.2, 0.3]})
    c = collect.rank_correlation(study, "discriminability")
    assert c["rho"] == pytest.approx(1.0) and c["p"] == pytest.approx(2 / 6)  # 2 of 6 orders


def _reference_spearman_p(x, y, rho):
    """The enumeration the scipy permutation test replaced."""
    import itertools

    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)

    def corr(a, b):
        a, b = np.asarray(a) - np.mean(a), np.asarray(b) - np.mean(b)
        denom = np.sqrt((a * a).sum() * (b * b).sum())
        return 0.0 if denom == 0 else float((a * b).sum() / denom)

    perms = list(itertools.permutations(range(len(rx))))
    return sum(abs(corr(rx, ry[list(p)])) >= abs(rho) - 1e-12 for p in perms) / len(perms)


def _reference_bootstrap(rows, resamples=1000, seed=0, level=0.95):
    """The hand-written stratified percentile bootstrap scipy's bootstrap replaced."""
    rng = np.random.default_rng(seed)
    by_task = {}
    for r in rows:
        by_task.setdefault(r["tag"], {}).setdefault(r["prompt_index"], []).append(
            float(r["correct"]))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    draws, out = {}, {}
    for task, prompts in by_task.items():
        values = np.array([np.mean(v) for v in prompts.values()])
        draws[task] = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
        out[task] = (np.percentile(draws[task], lo), np.percentile(draws[task], hi))
    overall = np.mean(list(draws.values()), axis=0)
    return out, (np.percentile(overall, lo), np.percentile(overall, hi))


def test_scipy_statistics_give_the_hand_written_results():
    from scipy.stats import spearmanr

    from emf_bench.reporting.collect import exact_spearman_p

    rng = np.random.default_rng(0)
    for n in range(3, 8):
        for ties in (False, True):
            x = rng.integers(0, 3, n).astype(float) if ties else rng.normal(size=n)
            y = rng.normal(size=n)
            rho = spearmanr(x, y)[0]
            if not np.isnan(rho):
                assert exact_spearman_p(x, y, rho) == pytest.approx(
                    _reference_spearman_p(x, y, rho), abs=1e-12)
    tasks = ["single_object", "two_object", "counting", "colors", "position", "color_attr"]
    for trial in range(6):
        rows = [{"tag": tasks[i % 6], "prompt_index": i,
                 "correct": float(rng.random() < [0, 0.3, 1, 0.5, 0.2, 0.7][i % 6])}
                for i in range(6 * int(rng.integers(1, 25))) for _ in range(4)]
        tasks_ci, overall = _reference_bootstrap(rows, seed=trial)
        got = bootstrap_geneval(rows, seed=trial)
        assert (got["low"], got["high"]) == pytest.approx(overall, abs=1e-12)
        for task, (low, high) in tasks_ci.items():
            assert (got["tasks"][task]["low"], got["tasks"][task]["high"]) == pytest.approx(
                (low, high), abs=1e-12)
