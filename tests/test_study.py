"""`emf-bench run`'s study on tiny profiles: longer budgets, other settings, probes side by side,
interrupts, the time ledger, profiles and the estimate."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from tests_shared import TINY

from emf_bench.cli import main
from emf_bench.errors import EmfBenchError
from emf_bench.study import STUDY_BENCHMARKS, Study, profile


def test_a_longer_budget_trains_further_and_replaces_the_evaluations(study_run, tmp_path):
    from dataclasses import replace

    run = tmp_path / "run"
    shutil.copytree(study_run[0], run)
    study = Study(replace(TINY, budget="5steps"), run, study_run[1].world, device="cpu",
                  jobs=1)
    study.encoders = study_run[1].encoders
    study.run()
    settings = sorted(run.glob("evals/probe-*/*/settings.json"))
    benchmarks = len(STUDY_BENCHMARKS)
    assert len(settings) == 3 * benchmarks  # three probes, every study benchmark
    assert {json.loads(s.read_text())["generator"]["step"] for s in settings} == {5}
    assert len(list(run.glob("evals/*/*/steps-*/summary.json"))) == 3 * benchmarks * 2


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
    study = Study(TINY, run, study_run[1].world, device="cpu", jobs=1)
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
    study = Study(TINY, run, study_run[1].world, device="cpu", jobs=2, threads=1)
    study.encoders = study_run[1].encoders
    assert study.run()["probes"] == ["class-label/meanflow", "bag-of-words/meanflow",
                                     "class-label/flow-matching"]
    for probe in ("class-label/meanflow", "bag-of-words/meanflow", "class-label/flow-matching"):
        alone, side = (load_checkpoint(r / "probes" / probe) for r in (study_run[0], run))
        assert side.state["step"] == alone.state["step"] == 3
        for name, value in alone.ema.items():  # one thread each way: the same arithmetic
            assert torch.equal(side.ema[name], value), name
    summaries = sorted(run.glob("evals/*/*/steps-*/summary.json"))
    assert len(summaries) == 3 * len(STUDY_BENCHMARKS) * 2
    for file in summaries:  # evaluated in a worker: the same scores
        same = json.loads((study_run[0] / file.relative_to(run)).read_text())
        assert json.loads(file.read_text())["overall"] == same["overall"], file


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
    side = "probes and evaluation, side by side"
    assert ledger["runs"] == 1 and ledger["stages"][side] > 0
    resumed = Study(TINY, run, study_run[1].world, device="cpu").times()
    assert resumed["runs"] == 2 and resumed["seconds"] >= ledger["seconds"]
    assert resumed["stages"][side] == ledger["stages"][side]


def test_an_unreadable_time_ledger_is_a_note_not_a_stop(tmp_path):
    (tmp_path / "study-time.json").write_text("{")
    study = Study(TINY, tmp_path, {}, device="cpu")
    assert study.times()["runs"] == 1 and "unreadable" in study.notes[0]


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


def test_the_estimate_counts_steps_by_measured_step_times_and_time_budgets_as_given(tmp_path):
    from emf_bench.world import WorldConfig

    probes = [("class-label", "meanflow"), ("class-label", "flow-matching")]
    by_time = Study(replace(TINY, budget="90s"), tmp_path, WorldConfig().to_dict(),
                    device="cpu", jobs=1).estimate(probes)
    assert by_time["probes"] == [90.0, 90.0] and "90s each" in by_time["line"]
    by_steps = Study(replace(TINY, budget="100steps"), tmp_path, WorldConfig().to_dict(),
                     device="cpu", jobs=1).estimate(probes)
    assert all(s > 0 for s in by_steps["probes"]) and "100 steps each" in by_steps["line"]
    assert by_steps["seconds"] == sum(by_steps["probes"]) + by_steps["evaluation"]
    # side by side: the longest worker's share, each probe with its own evaluation
    side = Study(replace(TINY, budget="100steps"), tmp_path, WorldConfig().to_dict(),
                 device="cpu", jobs=2, threads=1).estimate(probes)
    each = side["each_evaluation"]
    assert "2 at a time" in side["line"] and "1 thread;" in side["line"]
    assert side["seconds"] == max(side["probes"]) + each  # two probes, two workers


def test_side_by_side_jobs_and_their_schedule(monkeypatch):
    from emf_bench import side_by_side
    from emf_bench.probe import precision

    monkeypatch.setattr(precision, "physical_cores", lambda: 4)
    assert side_by_side.auto_jobs(None, 5, "cpu", None) == 4  # one probe per core
    assert side_by_side.auto_jobs(None, 3, "cpu", None) == 3  # no more than the probes
    assert side_by_side.auto_jobs(None, 5, "cpu", 2) == 2  # --threads 2: two cores a probe
    assert side_by_side.auto_jobs(3, 5, "cpu", None) == 3  # --jobs as given
    monkeypatch.setattr(precision, "physical_cores", lambda: 16)
    assert side_by_side.auto_jobs(None, 5, "cpu", None) == 5
    assert side_by_side.worker_threads(None, 5, None) == 1  # chosen here: one thread, any CPU
    assert side_by_side.worker_threads(4, 5, None) == 4  # --jobs 4: a share of the 16 cores
    assert side_by_side.auto_jobs(None, 5, "cpu", 8) == 2  # --threads 8: two probes of 8
    assert side_by_side.worker_threads(None, 5, 8) == side_by_side.worker_threads(2, 5, 8) == 8
    # a pool of two takes the trainings in order, each probe's evaluation (1 s) queued behind
    # them when its training ends: the second worker evaluates four while the fifth trains
    assert side_by_side.makespan([10, 10, 10, 10, 5], 1, 2) == 26
    assert side_by_side.makespan([5, 10, 10], 1, 2) == 16  # 0-5 train, 5-15, 15-16 | 0-10-11-12
    assert side_by_side.makespan([3, 4], 1, 1) == 9
