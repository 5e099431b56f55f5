"""`emf-bench report` and `emf-bench run` on tiny runs: sections, partial runs, escaping, the
study's numbers, resumption, bad run directories, and a real headless browser."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from emf_bench.cli import main
from emf_bench.errors import EmfBenchError
from emf_bench.evaluation.benchmarks.geneval import bootstrap_geneval
from emf_bench.reporting import collect
from emf_bench.study import Profile, Study, profile

TINY = Profile("tiny", "a test profile", probe_encoders=("class-label", "bag-of-words"),
               baselines=("class-label",), budget="3steps", size="tiny", batch_size=8,
               steps=(1, 2), images_per_prompt=1, guidance=1.0, queries=40, pool_size=200,
               train_size=64)


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("study")
    from emf_bench.world import WorldConfig

    study = Study(TINY, run, WorldConfig().to_dict(), device="cpu")
    study.encoders = lambda: (["class-label", "bag-of-words", "constant"],
                              ["class-label", "bag-of-words"])
    from emf_bench.rundir import RunDir

    with RunDir.open(run).invocation("run", {"profile": "tiny"}, 0):
        result = study.run()
    assert result["probes"] == ["class-label/meanflow", "bag-of-words/meanflow",
                                "class-label/flow-matching"]
    return run, study


def test_study_tables_have_intervals_and_a_rank_correlation(study_run):
    run, _ = study_run
    encoders = collect.encoder_table(run)
    assert set(encoders["encoder"]) == {"class-label", "bag-of-words", "constant"}
    evals = collect.evaluations(run)
    assert {(e.benchmark, e.steps) for e in evals} == {(b, k) for b in ("world-geneval",
                                                                        "world-dpg")
                                                       for k in (1, 2)}
    study = collect.study_table(run, encoders, evals)
    assert len(study) == 3 * 2  # three probes, two step counts
    assert (study["low"] <= study["score"]).all() and (study["score"] <= study["high"]).all()
    corr = collect.rank_correlation(study, "discriminability")
    assert corr["n"] == 2 and corr["rho"] is None  # two probed encoders: no rank correlation


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


def test_report_has_every_section_and_a_second_study_run_does_no_new_work(study_run, capsys):
    run, study = study_run
    chunks = sorted(run.glob("evals/*/*/steps-*/chunks/*.jsonl"))
    stamps = [c.stat().st_mtime_ns for c in chunks]
    study.run()  # everything is done: probes reused, chunks kept
    assert [c.stat().st_mtime_ns for c in chunks] == stamps
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    for section in ("Encoders", "Probes", "Generation", "The study", "Manifest and backends",
                    "NOT the official backend", "paper reference", "Failed images",
                    "Samples: probe:class-label/meanflow"):
        assert section in html, section
    assert "src=\"http" not in html and "<link" not in html  # self-contained
    for name in ("encoders", "probes", "evals", "study"):
        assert (run / "report" / f"{name}.csv").exists()
        assert (run / "report" / f"{name}.parquet").exists()
    assert (run / "report/training.png").exists()
    assert "curriculum" in (run / "report/probes.csv").read_text().splitlines()[0]


def test_a_longer_budget_trains_further_and_replaces_the_evaluations(study_run, tmp_path):
    from dataclasses import replace

    run = tmp_path / "run"
    shutil.copytree(study_run[0], run)
    study = Study(replace(TINY, budget="5steps"), run, study_run[1].world, device="cpu")
    study.encoders = study_run[1].encoders
    study.run()
    settings = sorted(run.glob("evals/probe-*/*/settings.json"))
    assert len(settings) == 3 * 2  # three probes, two benchmarks
    assert {json.loads(s.read_text())["generator"]["step"] for s in settings} == {5}
    assert len(list(run.glob("evals/*/*/steps-*/summary.json"))) == 3 * 2 * 2


def copy_with_train_settings(study_run, run: Path, probe: str, edit) -> None:
    """A copy of the study run whose `probe` was trained with other settings (edit(train))."""
    shutil.copytree(study_run[0], run)
    for state_file in run.glob(f"probes/{probe}/checkpoints/*/state.json"):
        state = json.loads(state_file.read_text())
        edit(state["train"])
        state_file.write_text(json.dumps(state))


def test_a_probe_from_other_settings_stops_the_study_with_its_way_out(study_run, tmp_path):
    run = tmp_path / "run"
    # a probe trained before --tangent existed (its checkpoint has no "tangent": "sample")
    copy_with_train_settings(study_run, run, "class-label/meanflow",
                             lambda train: train.pop("tangent"))
    study = Study(TINY, run, study_run[1].world, device="cpu")
    study.encoders = study_run[1].encoders
    with pytest.raises(EmfBenchError, match=r"other training settings \(tangent\): it was "
                       r"trained with tangent='sample', this run asks for tangent='model'; run "
                       r"the study in a new --run-dir"):
        study.run()


def test_probes_trained_side_by_side_are_the_probes_trained_one_after_another(study_run,
                                                                               tmp_path):
    import torch

    from emf_bench.probe.checkpoint import load_checkpoint

    run = tmp_path / "run"
    study = Study(TINY, run, study_run[1].world, device="cpu", jobs=2)
    study.encoders = study_run[1].encoders
    assert study.run()["probes"] == ["class-label/meanflow", "bag-of-words/meanflow",
                                     "class-label/flow-matching"]
    for probe in ("class-label/meanflow", "bag-of-words/meanflow", "class-label/flow-matching"):
        alone, side = (load_checkpoint(r / "probes" / probe) for r in (study_run[0], run))
        assert side.state["step"] == alone.state["step"] == 3
        for name, value in alone.ema.items():
            torch.testing.assert_close(side.ema[name], value, rtol=1e-4, atol=1e-5)
    assert len(list(run.glob("evals/*/*/steps-*/summary.json"))) == 3 * 2 * 2


def test_a_side_by_side_probe_error_stops_the_study_with_that_error(study_run, tmp_path):
    from emf_bench.errors import EmfBenchError

    run = tmp_path / "run"
    copy_with_train_settings(study_run, run, "bag-of-words/meanflow",
                             lambda train: train.update(seed=7))
    study = Study(replace(TINY, budget="5steps"), run, study_run[1].world, device="cpu",
                  jobs=3)
    study.encoders = study_run[1].encoders
    with pytest.raises(EmfBenchError, match=r"other training settings \(seed\)"):
        study.run()


def test_an_interrupt_ends_the_side_by_side_probe_processes(study_run, tmp_path,
                                                            monkeypatch):
    import concurrent.futures
    import multiprocessing
    import time

    run = tmp_path / "run"

    def interrupt_once_a_checkpoint_is_saved(futures, **kwargs):
        deadline = time.monotonic() + 300
        while not list(run.glob("probes/*/*/latest.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        raise KeyboardInterrupt

    monkeypatch.setattr(concurrent.futures, "wait", interrupt_once_a_checkpoint_is_saved)
    study = Study(replace(TINY, budget="100000steps"), run, study_run[1].world, device="cpu",
                  jobs=2)
    study.encoders = study_run[1].encoders
    with pytest.raises(KeyboardInterrupt):
        study.run()
    assert multiprocessing.active_children() == []  # the probes in training were ended
    saved = sorted(run.glob("probes/*/*/latest.json"))  # what a re-run resumes from
    assert saved and all(json.loads(f.read_text())["step"] >= 250 for f in saved)
    ledger = json.loads((run / "study-time.json").read_text())  # the interrupted run's time
    assert ledger["runs"] == 1 and ledger["stages"]["probes"] > 0
    resumed = Study(TINY, run, study_run[1].world, device="cpu").times()
    assert resumed["runs"] == 2 and resumed["seconds"] >= ledger["seconds"]
    assert resumed["stages"]["probes"] == ledger["stages"]["probes"]


def test_an_unreadable_time_ledger_is_a_note_not_a_stop(tmp_path):
    (tmp_path / "study-time.json").write_text("{")
    study = Study(TINY, tmp_path, {}, device="cpu")
    assert study.times()["runs"] == 1 and "unreadable" in study.notes[0]


def test_partial_runs_and_user_text_are_safe(tmp_path, capsys):
    assert main(["world", "export", "--out", str(tmp_path / "x"), "--images-per-prompt",
                 "1"]) == 0
    evil = "<script>alert(1)</script>"
    assert main(["eval", "--images", str(tmp_path / "x/geneval/images"), "--name", evil,
                 "--run-dir", str(tmp_path / "run")]) == 0
    assert main(["report", str(tmp_path / "run")]) == 0
    html = (tmp_path / "run/report.html").read_text()
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "No encoder scores in this run" in html and "No probes in this run" in html


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "not an emf-bench run directory"),
    (lambda p: (p.mkdir(), (p / "manifest.json").write_text("{")), "corrupt manifest"),
    (lambda p: (p.mkdir(), (p / "manifest.json").write_text(json.dumps(
        {"tool": "emf-bench", "format_version": 99, "invocations": []}))), "newer than"),
])
def test_bad_run_directories_are_one_line(tmp_path, capsys, setup, message):
    setup(tmp_path / "r")
    code = main(["report", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err


def test_unknown_profile_and_encoder(capsys, tmp_path):
    assert main(["run", "--profile", "quik", "--run-dir", str(tmp_path)]) == 2
    assert "did you mean 'quick'" in capsys.readouterr().err
    assert main(["run", "--encoder", "clip-vit-l14", "--run-dir", str(tmp_path)]) == 2
    assert "clip-vit-l-14" in capsys.readouterr().err
    for guidance in ("0", "nan"):
        assert main(["run", "--guidance", guidance, "--run-dir", str(tmp_path)]) == 2
        assert f"--guidance must be in (0, 100], got {float(guidance)}" in capsys.readouterr().err
    assert main(["run", "--budget", "soon", "--run-dir", str(tmp_path)]) == 2
    assert "does not parse" in capsys.readouterr().err
    assert main(["run", "--jobs", "0", "--run-dir", str(tmp_path)]) == 2
    assert "--jobs must be at least 1, got 0" in capsys.readouterr().err
    assert main(["run", "--first-tasks", "position", "--first-share", "0", "--run-dir",
                 str(tmp_path)]) == 2
    assert "a curriculum needs both its tasks and a share" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_a_profile_keeps_its_curriculum_unless_told_otherwise():
    long = profile("long")
    assert (long.first_tasks, long.first_share) == (("position", "color_attr"), 0.5)
    none = profile("long", first_share=0)  # --first-share 0: no curriculum
    assert (none.first_tasks, none.first_share) == ((), 0)
    position = profile("long", first_tasks=("position",))
    assert (position.first_tasks, position.first_share) == (("position",), 0.5)
    assert profile("quick").first_tasks == long.first_tasks
    quick = profile("quick", first_tasks=("counting",), first_share=0.25)
    assert (quick.first_tasks, quick.first_share) == (("counting",), 0.25)
    with pytest.raises(EmfBenchError, match="needs both its tasks and a share"):
        profile("long", first_tasks=(), first_share=0.5)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_a_headless_browser(study_run, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("chromium not installed (.ci/run installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    run, _ = study_run
    html = run / "report.html"
    if not html.exists():
        main(["report", str(run)])
    errors = []
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = b.new_page(viewport={"width": 1200, "height": 1600})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(Path(html).resolve().as_uri())
        decoded, total = page.evaluate(
            "() => [[...document.images].filter(i => i.complete && i.naturalWidth > 0).length,"
            " document.images.length]")
        page.screenshot(path=str(tmp_path / "shot.png"), full_page=True)
        b.close()
    assert errors == []
    assert total > 5 and decoded == total
    from PIL import Image, ImageStat

    shot = Image.open(tmp_path / "shot.png").convert("L")
    assert shot.height > 1600 and ImageStat.Stat(shot).stddev[0] > 10  # not blank


def test_rank_correlation_of_few_encoders_uses_the_exact_p_value():
    import pandas as pd

    study = pd.DataFrame({"steps": [1] * 3, "objective": ["meanflow"] * 3,
                          "discriminability": [0.6, 0.7, 0.8], "score": [0.1, 0.2, 0.3]})
    c = collect.rank_correlation(study, "discriminability")
    assert c["rho"] == pytest.approx(1.0) and c["p"] == pytest.approx(2 / 6)  # 2 of 6 orders


def test_the_report_names_the_curriculum_and_the_runs_a_study_took(study_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(study_run[0], run)
    meta = {"profile": "tiny", "description": "a test profile", "runs": 2, "seconds": 150.0,
            "settings": {**TINY.to_dict(), "first_tasks": ["position"], "first_share": 0.5},
            "host": {"cpus": 2, "platform": "test"}}
    (run / "study.json").write_text(json.dumps(meta))
    assert main(["report", str(run)]) == 0
    text = " ".join((run / "report.html").read_text().split())
    assert "Curriculum: every probe trained on position scenes alone for the first 50%" in text
    assert "Wall time 2.5 minutes over 2 runs (interrupted and resumed)" in text
    assert collect.curriculum({"first_tasks": ["position"], "first_share": 0.5}) == \
        "position first (50%)"
    assert collect.curriculum({}) == "none"


def test_probes_of_unequal_steps_are_flagged_next_to_the_verdict(study_run, tmp_path, capsys):
    """Time budgets on a busy machine: the report and the terminal say the comparison is
    unfair, with each probe's steps."""
    from emf_bench.cli.run import print_study
    from emf_bench.reporting.report import build_report

    run = tmp_path / "run"
    shutil.copytree(study_run[0], run)
    probe_file = run / "probes/bag-of-words/meanflow/probe.json"
    state = json.loads(probe_file.read_text())
    probe_file.write_text(json.dumps({**state, "step": 30}))
    html = build_report(run).read_text()
    assert "unfair comparison: the probes trained 3 to 30 steps" in html
    assert html.index("unfair comparison") < html.index("class-label at or near the top")
    print_study(run, [], None, {"seconds": 60.0, "runs": 1, "this_run_seconds": 60.0})
    out = capsys.readouterr().out
    assert "bag-of-words meanflow 30" in " ".join(out.split())
    assert "EMF scored 0.74 at 1 step and 0.90 at 4" in " ".join(out.split())


def test_the_estimate_counts_steps_by_measured_step_times_and_time_budgets_as_given(tmp_path):
    from emf_bench.world import WorldConfig

    probes = [("class-label", "meanflow"), ("class-label", "flow-matching")]
    by_time = Study(replace(TINY, budget="90s"), tmp_path, WorldConfig().to_dict(),
                    device="cpu").estimate(probes)
    assert by_time["probes"] == [90.0, 90.0] and "90s each" in by_time["line"]
    by_steps = Study(replace(TINY, budget="100steps"), tmp_path, WorldConfig().to_dict(),
                     device="cpu").estimate(probes)
    assert all(0 < s < 90 for s in by_steps["probes"]) and "100 steps each" in by_steps["line"]
    assert by_steps["seconds"] == sum(by_steps["probes"]) + by_steps["evaluation"]
