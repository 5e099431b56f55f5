"""Benchmarks behind one interface: the sweep runs a benchmark it has never heard of, and a
summary leaves the caller's rows as they were."""

import copy
import json
from dataclasses import dataclass

import numpy as np
import pytest

from emf_bench.errors import EmfBenchError
from emf_bench.evaluation import benchmarks
from emf_bench.evaluation.benchmarks import Scorer, Unit, image_seed, load_benchmark
from emf_bench.evaluation.runner import EvalSettings, StepSweep, collect_summaries, summary_table
from emf_bench.storage import atomic_save_png


@dataclass
class Brightness:
    """A benchmark in one small class: is the image as bright as the prompt says?"""

    name: str
    prompts: tuple[str, ...] = ("bright", "dark", "bright")
    source: str = "test"
    needs = "vqa"

    @classmethod
    def load(cls, name, sources):
        return cls(name)

    def __len__(self):
        return len(self.prompts)

    def describe(self):
        return {"benchmark": self.name, "suite_source": self.source}

    def item(self, index):
        return {"prompt": self.prompts[index]}

    def plan(self, indices, per_prompt, seed):
        return [Unit(i, n, [self.prompts[i]], [image_seed(seed, i, n)], f"images/{i}-{n}.png")
                for i in indices for n in range(per_prompt)]

    def compose(self, images):
        return images[0]

    def save(self, images_dir, units):
        for u in units:
            atomic_save_png(images_dir / f"{u.index}-{u.sample}.png", u.image)

    def read(self, root, indices):
        raise EmfBenchError("no folder layout")

    def score(self, unit, scorer, rules, base):
        (answer,) = scorer.vqa.answer(unit.image, [f"is it {self.prompts[unit.index]}?"])
        return [{**base, "index": unit.index, "sample": unit.sample, "seed": unit.seeds[0],
                 "correct": answer == "yes"}]

    def summarize(self, rows, scorer):
        return {"overall": float(np.mean([r["correct"] for r in rows]))}

    @staticmethod
    def metrics(summary):
        return {"overall": summary["overall"]}


class Lamp:
    """Bright images for 'bright' prompts, always."""

    name, official = "lamp", False

    def describe(self):
        return {"name": self.name, "kind": "test"}

    def generate(self, prompts, steps, seeds, guidance=1.0):
        return [np.full((8, 8, 3), 250 if p == "bright" else 0, np.uint8) for p in prompts]


class Eye:
    name, official = "eye", False

    def describe(self):
        return {"name": self.name, "official": False}

    def answer(self, image, questions):
        bright = image.mean() > 128
        return ["yes" if bright == q.endswith("bright?") else "no" for q in questions]


def test_a_new_benchmark_is_one_class_and_one_registry_line(tmp_path, monkeypatch):
    monkeypatch.setitem(benchmarks.BENCHMARKS, "brightness", f"{__name__}:Brightness")
    bench = load_benchmark("brightness")
    summary = StepSweep(Lamp(), bench, Scorer(vqa=Eye()), tmp_path,
                        EvalSettings(images_per_prompt=2)).run([1, 2])
    assert summary[1]["overall"] == 1.0 and summary[2]["benchmark"] == "brightness"
    rows = [json.loads(x) for x in (tmp_path / "evals/lamp/brightness/steps-1/results.jsonl")
            .read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["seed"] == image_seed(0, 0, 0)
    assert (tmp_path / "evals/lamp/brightness/steps-2/images/2-1.png").exists()
    table = summary_table(collect_summaries(tmp_path))
    assert set(table["benchmark"]) == {"brightness"} and list(table["value"]) == [1.0, 1.0]


def test_a_benchmark_refuses_a_scorer_without_its_backend(tmp_path, monkeypatch):
    monkeypatch.setitem(benchmarks.BENCHMARKS, "brightness", f"{__name__}:Brightness")
    with pytest.raises(EmfBenchError, match="brightness needs a vqa backend"):
        StepSweep(Lamp(), load_benchmark("brightness"), Scorer(), tmp_path)


@pytest.mark.parametrize("name", ["world-geneval", "world-dpg"])
def test_summaries_leave_the_callers_rows_unchanged(name, tmp_path):
    bench = load_benchmark(name)
    scorer = bench.make_scorer(benchmarks.BackendOptions(), {})
    sweep = StepSweep(Lamp(), bench, scorer, tmp_path, EvalSettings(images_per_prompt=1))
    sweep.run([1])
    rows = [json.loads(x) for x in (sweep.root / "steps-1/results.jsonl").read_text()
            .splitlines()]
    before = copy.deepcopy(rows)
    sweep.summarize(1, rows)
    assert rows == before


def test_unknown_benchmarks_are_named_with_the_closest_ones():
    with pytest.raises(EmfBenchError, match="did you mean 'world-dpg'"):
        load_benchmark("world-dgp")
