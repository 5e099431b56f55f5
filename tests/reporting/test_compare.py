"""`emf-bench report RUN RUN ...`: runs on other settings and from an older commit in one table
and report; runs scored differently kept apart; what cannot be read named and skipped."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from tests_shared import run_cli as run

from emf_bench.cli import main

TINY = ["--size", "tiny", "--train-size", "64", "--batch-size", "8", "--device", "cpu",
        "--no-quick-eval", "--budget", "3steps"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """a: guidance 1; b: guidance 2, two images a prompt (comparable with a); c: a's
    summaries as an older emf-bench wrote them (no provenance, no suite); d: one task only
    (a subset: kept apart)."""

    root = tmp_path_factory.mktemp("compare")
    assert main(["train-probe", "--encoder", "class-label", *TINY, "--run-dir",
                 str(root / "probe")]) == 0
    base = ["eval", "--model", "probe:class-label", "--benchmark", "world-geneval", "--steps",
            "1,2", "--device", "cpu"]
    for name, extra in (("a", []), ("b", ["--guidance", "2", "--images-per-prompt", "2"]),
                        ("d", ["--tags", "colors"])):
        shutil.copytree(root / "probe", root / name)
        assert main([*base, *extra, "--run-dir", str(root / name)]) == 0
    shutil.copytree(root / "a", root / "c")
    for file in (root / "c").glob("evals/*/*/steps-*/summary.json"):
        summary = json.loads(file.read_text())
        del summary["provenance"], summary["suite"]
        file.write_text(json.dumps(summary))
    return root


def test_runs_on_other_settings_and_an_older_commit_make_one_table(capsys, runs, tmp_path):
    out = tmp_path / "cmp.html"
    code, _, err = run(capsys, "report", runs / "a", runs / "b", runs / "c", runs / "d",
                       "--out", out)
    assert code == 0, err
    table = pd.read_parquet(tmp_path / "cmp" / "comparison.parquet")
    assert set(table["run"]) == {"a", "b", "c", "d"}
    overall = table[table["metric"] == "overall"]
    groups = overall.groupby("group")["run"].agg(lambda r: sorted(set(r))).to_dict()
    # a, b and the older c (no prompts source recorded) were scored alike; d (one task) is
    # kept apart
    assert sorted(groups.values()) == [["a", "b", "c"], ["d"]]
    assert table.loc[table["run"] == "a", "provenance"].eq("in file").all()
    assert table.loc[table["run"] == "c", "provenance"].str.contains("manifest").all()
    assert table["commit"].notna().all() or table["commit"].isna().all()  # a git checkout?
    a1 = overall[(overall["run"] == "a") & (overall["steps"] == 1)]["value"].item()
    c1 = overall[(overall["run"] == "c") & (overall["steps"] == 1)]["value"].item()
    assert a1 == c1  # the same scores, read from the older layout
    html = out.read_text()
    assert "kept apart" in html and "PARTIAL" in html and html.count("<img") >= 2
    assert (tmp_path / "cmp" / "comparison.csv").exists()


def test_unreadable_runs_are_named_and_only_nothing_left_is_an_error(capsys, runs, tmp_path):
    newer = tmp_path / "newer"
    shutil.copytree(runs / "a", newer)
    for file in newer.glob("evals/*/*/steps-*/summary.json"):
        summary = json.loads(file.read_text())
        summary["provenance"]["schema_version"] = 99
        file.write_text(json.dumps(summary))
    (tmp_path / "plain").mkdir()
    code, _, err = run(capsys, "report", runs / "a", newer, tmp_path / "plain", "--out",
                       tmp_path / "x.html")
    assert code == 0, err
    assert "results schema 99 is newer" in err and "plain is not an emf-bench run" in err
    code, _, err = run(capsys, "report", newer, tmp_path / "plain", "--out",
                       tmp_path / "y.html")
    assert code == 2 and err.startswith("error: nothing to compare")
    assert len(err.strip().splitlines()) == 1


def test_every_results_file_carries_its_provenance(runs):
    summary = json.loads(next((runs / "a").glob("evals/*/*/steps-1/summary.json")).read_text())
    probe = json.loads((runs / "a/probes/class-label/meanflow/probe.json").read_text())
    for record in (summary["provenance"], probe["provenance"]):
        assert record["schema_version"] == 1 and record["tool"] == "emf-bench"
        assert {"version", "git", "packages", "host", "argv", "seed"} <= set(record)
        assert "torch" in record["packages"]
    assert probe["provenance"]["precision"] in ("float32", "bfloat16")
    assert summary["suite"]["benchmark"] == "world-geneval"


def test_runs_export_and_merge_into_a_results_tree(capsys, runs, tmp_path):
    tree = tmp_path / "results"
    code, out, err = run(capsys, "report", runs / "a", runs / "b", runs / "d", "--out",
                         tmp_path / "x.html", "--results", tree)
    assert code == 0, err
    assert "results tree" in out
    (model,) = tree.iterdir()
    assert model.name == "probe-class-label-meanflow"
    (folder,) = model.iterdir()
    meta = json.loads((folder / "model_meta.json").read_text())
    assert meta["kind"] == "probe" and meta["generator"]["weights"].startswith(folder.name)
    full = json.loads((folder / "world-geneval.json").read_text())
    assert full["schema_version"] == 1 and full["benchmark"] == "world-geneval"
    assert len(full["entries"]) == 2  # a and b: other guidance and images a prompt
    a = next(e for e in full["entries"] if e["key"]["settings"]["guidance"] != 2)
    summary = json.loads(next((runs / "a").glob("evals/*/*/steps-1/summary.json")).read_text())
    assert list(a["steps"]) == ["1", "2"] and not a["official"]
    assert a["steps"]["1"]["overall"] == summary["overall"]
    assert a["steps"]["1"]["provenance"] == summary["provenance"]
    assert (folder / "world-geneval.colors.json").exists()  # a subset: a file of its own
    before = (folder / "world-geneval.json").read_text()
    again = tmp_path / "a"
    shutil.copytree(runs / "a", again)  # a single run's report writes into its folder
    code, _, err = run(capsys, "report", again, "--results", tree)  # merged, not repeated
    assert code == 0, err
    assert (folder / "world-geneval.json").read_text() == before
    (folder / "world-geneval.json").write_text("{broken")
    code, _, err = run(capsys, "report", again, "--results", tree)
    assert code == 2 and "world-geneval.json is unreadable" in err
    assert len(err.strip().splitlines()) == 1
