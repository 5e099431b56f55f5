"""`eval --generator`: any callable as a generator, and partial runs (--tags, --limit) that
say so everywhere."""

import json

import pytest

from emf_bench.cli import main

GENERATORS = '''
import numpy as np
from emf_bench.world import World
from emf_bench.world.grammar import parse

WORLD = World()

class Perfect:
    """Draws the prompt's meaning: a stand-in for a real few-step model."""
    def describe(self):
        return {"weights": "world-v1"}

    def __call__(self, prompts, steps, seeds, guidance):
        return [WORLD.render(WORLD.sample_scene(parse(p), np.random.default_rng(s)), 64)
                .astype(np.float32) / 255 for p, s in zip(prompts, seeds)]

def one_short(prompts, steps, seeds, guidance):
    return [np.zeros((8, 8, 3), np.uint8)] * (len(prompts) - 1)

def flat(prompts, steps, seeds, guidance):
    return [np.zeros((8, 8), np.uint8) for _ in prompts]

def broken(prompts, steps, seeds, guidance):
    raise RuntimeError("CUDA out of memory")
'''


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def module(tmp_path, monkeypatch):
    (tmp_path / "my_generators.py").write_text(GENERATORS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_callable_generator_on_part_of_a_benchmark(capsys, module):
    code, out, err = run(capsys, "eval", "--generator", "my_generators:Perfect", "--steps",
                         "1,4", "--tags", "single_object,two_object", "--limit", "6",
                         "--run-dir", "run")
    assert code == 0, err
    assert "PARTIAL: 6 of" in " ".join(out.split())
    folder = module / "run/evals/generator-Perfect/world-geneval.single_object+two_object.first6"
    summary = json.loads((folder / "steps-4/summary.json").read_text())
    assert summary["overall"] == 1.0 and summary["subset"]["prompts"] == 6
    assert summary["generator"]["settings"] == {"weights": "world-v1"}
    rows = (folder / "steps-1/results.jsonl").read_text().splitlines()
    assert len(rows) == 6 * 4
    assert {json.loads(r)["tag"] for r in rows} == {"single_object", "two_object"}
    # the file form of the same callable, and the DPG suite cut to its first prompts
    code, out, err = run(capsys, "eval", "--generator", module / "my_generators.py:Perfect",
                         "--benchmark", "world-dpg", "--steps", "1", "--limit", "3",
                         "--run-dir", "run", "--name", "perfect")
    assert code == 0, err
    dpg = json.loads((module / "run/evals/perfect/world-dpg.first3/steps-1/summary.json")
                     .read_text())
    assert dpg["overall"] == 100.0 and dpg["prompts"] == 3


@pytest.mark.parametrize("spec, message", [
    ("my_generators:one_short", "returned 3 image(s) for 4 prompt(s) at 1 step(s)"),
    ("my_generators:flat", "expected an (H, W, 3) image, got shape (8, 8)"),
    ("my_generators:broken", "failed at 1 step(s) on 4 prompt(s): RuntimeError: CUDA out of"),
    ("my_generators:missing", "my_generators has no 'missing'"),
    ("no_such_module:f", "cannot import no_such_module (ModuleNotFoundError"),
    ("nothing-registered", "give module:callable or file.py:callable"),
])
def test_a_generator_that_misbehaves_is_one_line(capsys, module, spec, message):
    code, _, err = run(capsys, "eval", "--generator", spec, "--steps", "1", "--limit", "1",
                       "--run-dir", "run")
    assert code == 2 and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("args, message", [
    (["--tags", "colour"], "unknown GenEval task in --tags: 'colour'; did you mean 'colors'"),
    (["--benchmark", "world-dpg", "--tags", "colors"], "--tags selects GenEval tasks"),
    (["--limit", "0"], "--limit must be at least 1"),
])
def test_bad_partial_runs_are_one_line(capsys, module, args, message):
    code, _, err = run(capsys, "eval", "--generator", "my_generators:Perfect", *args)
    assert code == 2 and message in err, err


def test_two_processes_generate_and_score_the_same_rows_as_one(tmp_path, module):
    """Under torchrun each rank generates its share of the chunks; rank 0 merges."""
    from tests_shared import run_two_and_one

    args = ["eval", "--generator", f"{module / 'my_generators.py'}:Perfect", "--steps", "1,2",
            "--benchmark", "world-geneval", "--benchmark", "world-dpg", "--limit", "40"]
    run_two_and_one(args, tmp_path / "one", tmp_path / "two", {"HF_HUB_OFFLINE": "1"})
    for bench in ("world-geneval.first40", "world-dpg.first40"):
        for k in (1, 2):
            name = f"evals/generator-Perfect/{bench}/steps-{k}/results.jsonl"
            assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
