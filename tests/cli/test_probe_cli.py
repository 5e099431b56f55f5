"""`emf-bench train-probe` and `emf-bench generate` as a user runs them."""

import json
import re

import pytest
from PIL import Image

from emf_bench.cli import main

TINY = ["--size", "tiny", "--train-size", "64", "--batch-size", "8", "--device", "cpu"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_generate(capsys, tmp_path):
    code, out, err = run(capsys, "train-probe", "--encoder", "class-label", "--budget", "3steps",
                         *TINY, "--ema-decay", "0.9", "--run-dir", tmp_path / "run")
    assert code == 0, err
    folder = tmp_path / "run/probes/class-label/meanflow"
    assert "world-GenEval" in out and (folder / "quick_eval.json").exists()
    assert "guidance 1.5 trained in" in " ".join(out.split())
    assert re.search(r"(float32|bfloat16) on \d+ threads of cpu", " ".join(out.split()))
    quick = json.loads((folder / "quick_eval.json").read_text())
    assert quick["official"] is False and quick["detector"] == "world-exact"
    assert set(quick["steps"]) == {"1", "2", "4"}
    manifest = json.loads((tmp_path / "run/manifest.json").read_text())
    entry = manifest["invocations"][-1]
    assert entry["command"] == "train-probe" and entry["status"] == "finished"
    assert entry["result"]["step"] == 3
    assert json.loads((folder / "checkpoints/step-0000003/state.json").read_text()
                      )["train"]["ema_decay"] == 0.9

    grid = tmp_path / "grid.png"
    code, out, err = run(capsys, "generate", "--probe", folder, "--prompt",
                         "a photo of a red circle", "--prompt", "two squares", "--steps",
                         "4,1", "--samples", "2", "--view-size", "32", "--out", grid)
    assert code == 0, err
    assert "4 rows x 2 step counts" in out
    image = Image.open(grid)
    assert image.width == 2 * (32 + 6) + 6  # one column per step count

    # Running the same command again reuses the finished probe.
    code, out, _ = run(capsys, "train-probe", "--encoder", "class-label", "--budget", "3steps",
                       *TINY, "--ema-decay", "0.9", "--run-dir", tmp_path / "run",
                       "--no-quick-eval")
    assert code == 0 and "reused" in out


@pytest.mark.parametrize("args, message", [
    (["train-probe", "--encoder", "clas-label"], "did you mean 'class-label'"),
    (["train-probe", "--encoder", "class-label", "--budget", "soon"], "budget 'soon' does not"),
    (["train-probe", "--encoder", "class-label", "--size", "huge"], "unknown probe size preset"),
    (["train-probe", "--encoder", "class-label", "--objective", "fm"], "unknown objective"),
    (["train-probe", "--encoder", "class-label", "--jvp", "dual", "--size", "cpu-dit"],
     "--jvp dual needs hand-written tangent rules"),
    (["train-probe", "--encoder", "class-label", "--objective", "flow-matching",
      "--init-from", "x"], "needs --objective meanflow"),
    (["train-probe", "--encoder", "class-label", "--resume", "--overwrite"], "contradict"),
    (["train-probe", "--encoder", "class-label", "--ema-decay", "1.5"], "EMA decay must be"),
    (["train-probe", "--encoder", "class-label", "--train-guidance", "0.5"],
     "trained-in guidance must be"),
    (["train-probe", "--encoder", "class-label", "--budget", "0steps"], "must be positive"),
    (["train-probe", "--encoder", "class-label", "--precision", "half"], "unknown precision"),
    (["train-probe", "--encoder", "class-label", "--precision", "bf16"],
     "--precision bf16: this CPU (it has neither AVX512-BF16 nor AMX) has no native bf16; use "
     "--precision auto"),
    (["train-probe", "--encoder", "class-label", "--threads", "4096"], "physical cores"),
    (["run", "--threads", "0"], "--threads must be a whole number of at least 1"),
    (["run", "--budget", "-3steps"], "does not parse"),
    (["generate", "--probe", "nowhere", "--prompt", "a circle"], "neither a probe folder"),
    (["generate", "--probe", "p", "--prompt", "a", "--steps", "1,x"], "comma-separated"),
    (["generate", "--probe", "p", "--prompt", "a", "--steps", "0"], "from 1 to 1000"),
])
def test_user_mistakes_are_one_line(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("emf_bench.probe.precision.cpu_flags", lambda: {"avx2"})
    code, _, err = run(capsys, *args)
    assert code == 2, err
    assert err.count("\n") == 1 and message in err


def test_text_outside_the_world_is_refused_by_a_class_label_probe(capsys, tmp_path):
    run(capsys, "train-probe", "--encoder", "class-label", "--budget", "2steps", *TINY,
        "--run-dir", tmp_path, "--no-quick-eval")
    code, _, err = run(capsys, "generate", "--probe", tmp_path / "probes/class-label/meanflow",
                       "--prompt", "an astronaut riding a horse", "--out", tmp_path / "g.png")
    assert code == 2 and "class-label encodes only the world's catalogue" in err
    assert not (tmp_path / "g.png").exists()



def test_the_help_states_the_training_defaults():
    """The options take TrainConfig's defaults (one source) and the help shows them."""
    from dataclasses import fields

    import typer

    from emf_bench.cli.app import app
    from emf_bench.probe.trainer import TrainConfig

    command = typer.main.get_command(app).commands["train-probe"]
    params = {p.name: p for p in command.params}
    curriculum = {"first_tasks", "first_share"}  # None: run's profile, train-probe's none
    shared = [f for f in fields(TrainConfig) if f.name in params and f.name not in curriculum]
    assert {"warm_start", "ema_decay", "train_guidance", "train_size", "budget"} <= \
        {f.name for f in shared}
    for f in shared:
        assert params[f.name].default == f.default, f.name
        assert params[f.name].show_default is not False, f.name
