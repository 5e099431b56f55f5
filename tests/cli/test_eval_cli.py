"""`emf-bench eval` as a user runs it: probes and image folders, tables, errors."""

import json

import pandas as pd
import pytest
from tests_shared import run_two_and_one

from emf_bench.cli import main

TINY = ["--size", "tiny", "--train-size", "64", "--batch-size", "8", "--device", "cpu",
        "--no-quick-eval"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("probe-run")
    assert main(["train-probe", "--encoder", "class-label", "--budget", "3steps", *TINY,
                 "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_probe_on_both_world_suites_at_two_step_counts(capsys, probe_run):
    code, out, err = run(capsys, "eval", "--model", "probe:class-label", "--benchmark",
                         "world-geneval", "--benchmark", "world-dpg", "--steps", "1,2",
                         "--images-per-prompt", "1", "--run-dir", probe_run, "--device", "cpu")
    assert code == 0, err
    assert "NOT the official backend" in out and "world-exact" in out
    root = probe_run / "evals/probe-class-label-meanflow"
    for bench in ("world-geneval", "world-dpg"):
        for k in (1, 2):
            summary = json.loads((root / bench / f"steps-{k}/summary.json").read_text())
            assert summary["steps"] == k and summary["scorer"]["official"] is False
    assert len(list((root / "world-geneval/steps-1/images").glob("*/samples/00000.png"))) == 126
    assert len(list((root / "world-dpg/steps-2/images").glob("*.png"))) == 64
    table = pd.read_parquet(probe_run / "evals/summary.parquet")
    assert set(table["steps"]) == {1, 2} and not table["official_backend"].any()
    assert {"overall", "position", "L1 entity"} <= set(table["metric"])
    # The same command again finds everything done.
    code, out, _ = run(capsys, "eval", "--model", "probe:class-label", "--steps", "1,2",
                       "--images-per-prompt", "1", "--run-dir", probe_run, "--device", "cpu")
    assert code == 0


def test_exported_folders_score_perfectly_through_the_cli(capsys, tmp_path):
    assert main(["world", "export", "--out", str(tmp_path / "x"), "--images-per-prompt",
                 "1"]) == 0
    capsys.readouterr()
    code, _out, err = run(capsys, "eval", "--images", tmp_path / "x/geneval/images",
                         "--name", "truth", "--run-dir", tmp_path / "run")
    assert code == 0, err
    summary = json.loads((tmp_path / "run/evals/truth/world-geneval/steps-0/summary.json")
                         .read_text())
    assert summary["overall"] == 1.0
    code, _, err = run(capsys, "eval", "--images", tmp_path / "x/geneval/images",
                       "--steps", "1,4", "--run-dir", tmp_path / "run")
    assert code == 2 and "{steps}" in err


@pytest.mark.parametrize("args, message", [
    (["eval"], "name what to evaluate"),
    (["eval", "--model", "probe:nothing"], "no probe 'nothing'"),
    (["eval", "--images", "x", "--benchmark", "genevall"], "did you mean 'geneval'"),
    (["eval", "--images", "x", "--benchmark", "geneval"], "needs --geneval-metadata"),
    (["eval", "--images", "x", "--benchmark", "dpg"], "needs --dpg-prompts"),
    (["eval", "--images", "x", "--steps", "a"], "comma-separated"),
    (["eval", "--images", "nowhere"], "image folder nowhere does not exist"),
    (["eval", "--images", "x", "--benchmark", "geneval", "--geneval-metadata", "missing.jsonl"],
     "does not exist"),
    (["eval", "--images", "x", "--guidance", "nan"], "--guidance must be in (0, 100], got nan"),
    (["eval", "--images", "x", "--threshold", "2"], "--threshold must be in [0, 1]"),
    (["eval", "--images", "x", "--max-objects", "0"], "--max-objects must be at least 1"),
    (["eval", "--images", "x", "--images-per-prompt", "0"], "--images-per-prompt must be at"),
])
def test_user_mistakes_are_one_line(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    code, _, err = run(capsys, *args)
    assert code == 2, err
    assert err.count("\n") == 1 and message in err


def test_malformed_geneval_metadata_names_the_line(capsys, tmp_path):
    meta = tmp_path / "m.jsonl"
    meta.write_text('{"tag": "single_object", "prompt": "a photo of a cat", "include": '
                    '[{"class": "cat", "count": 1}]}\n{"tag": "counting", "prompt": "x"}\n')
    code, _, err = run(capsys, "eval", "--images", tmp_path, "--benchmark", "geneval",
                       "--geneval-metadata", meta, "--run-dir", tmp_path / "r")
    assert code == 2 and f"{meta}:2: 'include' must be" in err


def test_two_processes_give_the_results_of_one(probe_run, tmp_path):
    args = ["eval", "--model", str(probe_run / "probes/class-label/meanflow"), "--steps", "1",
            "--images-per-prompt", "1", "--device", "cpu", "--benchmark", "world-geneval",
            "--benchmark", "world-dpg"]
    run_two_and_one(args, tmp_path / "one", tmp_path / "two", {})
    for bench in ("world-geneval", "world-dpg"):
        rel = f"evals/probe-class-label-meanflow/{bench}/steps-1/results.jsonl"
        assert (tmp_path / "one" / rel).read_text() == (tmp_path / "two" / rel).read_text()
