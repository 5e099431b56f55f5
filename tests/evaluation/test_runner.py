"""The step sweep on the world: ground truth scores perfectly, perturbed images fail exactly
where they should, interrupted runs resume to identical results."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from emf_bench.errors import EmfBenchError
from emf_bench.evaluation.benchmarks import Scorer, image_seed, load_benchmark
from emf_bench.evaluation.detectors import load_detector
from emf_bench.evaluation.runner import EvalSettings, StepSweep
from emf_bench.evaluation.vqa import load_vqa
from emf_bench.generators.folder import FolderGenerator
from emf_bench.world import World
from emf_bench.world.palette import BACKGROUND, COLORS


def geneval_sweep(root, run, **kw):
    suite = load_benchmark("world-geneval")
    return StepSweep(FolderGenerator(root, "truth"), suite,
                     Scorer(detector=load_detector("world-exact"), strict_world=True), run,
                     EvalSettings(**kw))


def test_ground_truth_scores_perfectly_on_both_suites(exported, tmp_path):
    summary = geneval_sweep(exported / "geneval/images", tmp_path).run([0])[0]
    assert summary["tasks"] == {t: 1.0 for t in summary["tasks"]} and len(summary["tasks"]) == 6
    assert summary["overall"] == 1.0 and summary["strict_extra"]["overall"] == 1.0
    assert summary["scorer"]["official"] is False
    assert summary["scorer"]["detector"]["name"] == "world-exact"
    rows = [json.loads(x) for x in (tmp_path / "evals/truth/world-geneval/steps-0/results.jsonl")
            .read_text().splitlines()]
    assert len(rows) == 2 * len(load_benchmark("world-geneval").rows)

    dpg = load_benchmark("world-dpg")
    result = StepSweep(FolderGenerator(exported / "dpg/images", "truth"), dpg,
                       Scorer(vqa=load_vqa("world-oracle")), tmp_path).run([0])[0]
    assert result["overall"] == 100.0 and result["prompts"] == len(dpg.items)
    assert all(v == 100.0 for v in result["level1"].values())


def perturbed_copy(exported, tmp_path, index, edit):
    root = tmp_path / "images"
    shutil.copytree(exported / "geneval/images", root)
    for sample in sorted((root / f"{index:05d}/samples").glob("*.png")):
        image = np.asarray(Image.open(sample).convert("RGB")).copy()
        Image.fromarray(edit(image)).save(sample)
    return root


def first(tag, predicate=lambda row: True):
    rows = load_benchmark("world-geneval").rows
    return next(i for i, r in enumerate(rows) if r["tag"] == tag and predicate(r))


def object_pixels(image, color):
    return np.all(image == np.array(COLORS[color], dtype=np.uint8), axis=-1)


def test_recoloured_moved_or_removed_objects_fail_with_the_right_reason(exported, tmp_path):
    world_bg = np.array(BACKGROUND, dtype=np.uint8)
    color_row = first("colors")
    want = load_benchmark("world-geneval").rows[color_row]["include"][0]
    other = next(c for c in World().config.colors if c != want["color"])

    def recolour(image):
        image[object_pixels(image, want["color"])] = COLORS[other]
        return image

    def remove(image):
        image[~np.all(image == world_bg, axis=-1)] = world_bg
        return image

    pos_row = first("position")

    def mirror(image):
        return image[:, ::-1].copy()  # left of <-> right of

    for index, edit, reason in ((color_row, recolour, f"expected {want['color']} "),
                                (first("single_object"), remove, "found 0"),
                                (pos_row, mirror, " target, found ")):
        run = tmp_path / f"run-{index}"
        root = perturbed_copy(exported, run, index, edit)
        geneval_sweep(root, run).run([0])
        rows = [json.loads(x) for x in (run / "evals/truth/world-geneval/steps-0/results.jsonl")
                .read_text().splitlines()]
        failed = {r["prompt_index"] for r in rows if not r["correct"]}
        assert failed == {index}, (index, failed)
        assert all(reason in r["reason"] for r in rows if not r["correct"])


class CountingGenerator:
    """A deterministic stand-in generator: noise seeded per image; raises after `fail_after`
    calls, as a killed run would."""

    name = "stub"
    official = False

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = 0, fail_after

    def describe(self):
        return {"name": self.name, "kind": "stub"}

    def generate(self, prompts, steps, seeds, guidance=1.0):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt
        return [WORLD.render(WORLD.sample_scene(WORLD.catalogue[s % 3].meaning,
                                                np.random.default_rng(s + steps)))
                for s in seeds]


WORLD = World()  # one for every stub image: its catalogue takes 60 ms to build


def test_an_interrupted_sweep_resumes_to_identical_results(tmp_path):
    suite = load_benchmark("world-geneval")
    scorer = Scorer(detector=load_detector("world-exact"))
    settings = EvalSettings(images_per_prompt=2, chunk_prompts=20)
    StepSweep(CountingGenerator(), suite, scorer, tmp_path / "a", settings).run([1, 2])
    with pytest.raises(KeyboardInterrupt):
        StepSweep(CountingGenerator(fail_after=3), suite, scorer, tmp_path / "b",
                  settings).run([1, 2])
    resumed = CountingGenerator()
    StepSweep(resumed, suite, scorer, tmp_path / "b", settings).run([1, 2])
    chunks = -(-len(suite.rows) // 20)
    assert resumed.calls == 2 * chunks - 3  # finished chunks were not redone
    for k in (1, 2):
        a = (tmp_path / f"a/evals/stub/world-geneval/steps-{k}/results.jsonl").read_text()
        b = (tmp_path / f"b/evals/stub/world-geneval/steps-{k}/results.jsonl").read_text()
        assert a == b
    row = json.loads(a.splitlines()[5])
    assert row["seed"] == image_seed(0, row["prompt_index"], row["sample"])
    # A second run with other settings refuses to mix results.
    with pytest.raises(EmfBenchError, match="other settings"):
        StepSweep(CountingGenerator(), suite, scorer, tmp_path / "a",
                  EvalSettings(images_per_prompt=3)).run([1])


def test_a_study_replaces_results_of_a_stale_generator(tmp_path):
    """A probe trained further has another state; a study recomputes its results instead of
    refusing, and drops step counts computed only for the old state."""
    suite = load_benchmark("world-geneval")
    scorer = Scorer(detector=load_detector("world-exact"))
    settings = EvalSettings(images_per_prompt=1, chunk_prompts=200)
    StepSweep(CountingGenerator(), suite, scorer, tmp_path, settings).run([1, 2])
    root = tmp_path / "evals/stub/world-geneval"
    first = (root / "steps-1/results.jsonl").read_text()

    class Trained(CountingGenerator):
        def describe(self):
            return {"name": self.name, "kind": "stub", "step": 2}

        def generate(self, prompts, steps, seeds, guidance=1.0):
            return super().generate(prompts, steps + 1, seeds, guidance)

    with pytest.raises(EmfBenchError, match="other generator"):
        StepSweep(Trained(), suite, scorer, tmp_path, settings).run([1])
    assert (root / "steps-1/results.jsonl").read_text() == first  # refused: nothing lost
    StepSweep(Trained(), suite, scorer, tmp_path, settings).run([1], replace_stale=True)
    assert (root / "steps-1/results.jsonl").read_text() != first
    assert not (root / "steps-2").exists()
    assert json.loads((root / "settings.json").read_text())["generator"]["step"] == 2


def test_bad_images_are_recorded_and_bad_folders_named(exported, tmp_path):
    root = tmp_path / "images"
    shutil.copytree(exported / "geneval/images", root)
    (root / "00003/samples/00001.png").write_bytes(b"not a png")
    summary = geneval_sweep(root, tmp_path).run([0])[0]
    assert summary["errors"] == 1 and summary["overall"] < 1.0
    (root / "00005/metadata.jsonl").write_text('{"prompt": "a photo of a dog"}\n')
    with pytest.raises(EmfBenchError, match="do not match"):
        geneval_sweep(root, tmp_path / "again").run([0])
    for png in (root / "00004/samples").glob("*.png"):
        png.rename(png.with_suffix(".jpg"))
    with pytest.raises(EmfBenchError, match=r"no images named <n>\.png .*GenEval counts only PNG"):
        geneval_sweep(root, tmp_path / "third").run([0])
