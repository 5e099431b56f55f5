"""`emf-bench report` on tiny studies: sections, partial runs, escaping, bad run directories,
the study's tables, and a real headless browser."""

import json
import shutil
from pathlib import Path

import pytest
from tests_shared import TINY

from emf_bench.cli import main
from emf_bench.reporting import collect


def test_study_tables_have_intervals_and_a_rank_correlation(study_run):
    run, _ = study_run
    encoders = collect.encoder_table(run)
    assert set(encoders["encoder"]) == {"class-label", "bag-of-words", "constant"}
    evals = collect.evaluations(run)
    assert {(e.benchmark, e.steps) for e in evals} == {
        (b, k) for b in ("world-geneval", "world-dpg", "world-geneval2") for k in (1, 2)}
    study = collect.study_table(run, encoders, evals)
    assert len(study) == 3 * 2  # three probes, two step counts
    assert (study["low"] <= study["score"]).all() and (study["score"] <= study["high"]).all()
    corr = collect.rank_correlation(study, "discriminability")
    assert corr["n"] == 2 and corr["rho"] is None  # two probed encoders: no rank correlation


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
    assert (run / "report/steps-world-geneval2.png").exists()  # beside world-GenEval's
    assert "world-geneval2" in html and "soft_tifa_am" in html
    for figure in ("world-geneval2-by-skill", "world-geneval2-by-atoms", "world-dpg-by-L1"):
        assert (run / f"report/{figure}.png").exists(), figure  # per part, from the benchmark
        assert f"parts-{figure.replace('-by-', '-')}" in html
    assert "curriculum" in (run / "report/probes.csv").read_text().splitlines()[0]


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


def test_figures_leave_the_process_matplotlib_backend_alone(tmp_path):
    import matplotlib
    import pandas as pd

    from emf_bench.reporting import plots

    before = matplotlib.get_backend()
    matplotlib.use("pdf")  # a notebook's or a user's choice, not the report's Agg
    try:
        table = pd.DataFrame({"benchmark": "world-geneval", "metric": "overall", "model": "m",
                              "steps": [1, 2, 4], "value": [0.2, 0.3, 0.4]})
        png = plots.score_vs_steps(table, "world-geneval", tmp_path / "f.png")
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)


def test_breakdown_figures_need_their_metrics(tmp_path):
    import pandas as pd
    from PIL import Image

    from emf_bench.reporting import plots

    rows = [{"benchmark": "geneval2", "model": m, "steps": k, "metric": f"atoms {a}",
             "value": 10.0 * a / k} for m in ("a", "b") for k in (1, 4) for a in (10, 3, 4)]
    table = pd.DataFrame(rows)
    assert plots.breakdown(table, "geneval2", "skill", "skill", "x", tmp_path / "s.png") is None
    assert plots.breakdown(table, "dpg", "atoms", "atoms", "x", tmp_path / "d.png") is None
    one = plots.breakdown(table[table["steps"] == 1], "geneval2", "atoms", "atomicity", "GM",
                          tmp_path / "one.png")
    two = plots.breakdown(table, "geneval2", "atoms", "atomicity", "GM", tmp_path / "two.png")
    assert Image.open(two).width > Image.open(one).width  # a panel per step count
    partial = table[table["model"] == "a"].assign(subset="PARTIAL: 3 of 9 prompts")
    both = pd.concat([table.assign(subset="all prompts"), partial])  # a full and a partial run
    assert plots.breakdown(both, "geneval2", "atoms", "atomicity", "GM", tmp_path / "p.png")
    assert plots.score_vs_steps(both.assign(metric="overall"), "geneval2", tmp_path / "q.png")
