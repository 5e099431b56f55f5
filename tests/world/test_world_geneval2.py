"""World-GenEval 2: the world's prompts of atomicity 3 and more in GenEval 2's wording, answered
by the oracle with probabilities 1 or 0: ground truth scores 100, a blank image about 0."""

from __future__ import annotations

import numpy as np
import pytest

from emf_bench.errors import EmfBenchError
from emf_bench.evaluation import geneval2 as g2
from emf_bench.world import World, parse
from emf_bench.world.geneval2 import WorldOracleVLM, atoms, questions, world_items


@pytest.fixture(scope="module")
def world():
    return World()


def test_items_have_geneval2_skills_atoms_and_single_out_every_object(world):
    items = world_items(world)
    assert len(items) > 100 and min(it.atom_count for it in items) >= 3
    assert {s for it in items for s in it.skills} == {"count", "object", "attribute",
                                                       "position"}
    shared = next(it for it in items if "How many red circles are in the image?" in
                  it.questions or any(q.startswith("How many red ") for q in it.questions))
    assert shared.atom_count == atoms(parse(shared.prompt))
    assert questions(parse("a circle and a red circle")) is None  # cannot be singled out


def test_ground_truth_scores_100_and_a_blank_image_about_0(world):
    items = world_items(world)
    oracle = WorldOracleVLM(world.detector())
    soft, blank_soft, vqa = {}, {}, {}
    blank = np.full((world.config.canvas,) * 2 + (3,), 128, dtype=np.uint8)
    for it in items:
        scene = world.sample_scene(parse(it.prompt), np.random.default_rng(it.index))
        image = world.render(scene)
        soft[it.index], hard = oracle.answer(image, it.questions, it.answers)
        assert all(hard), (it.prompt, [q for q, h in zip(it.questions, hard, strict=True)
                                       if not h])
        vqa[it.index] = oracle.vqascore(image, it.prompt)
        blank_soft[it.index] = oracle.answer(blank, it.questions, it.answers)[0]
    truth = g2.summarize(items, soft, None, vqa)
    assert truth["soft_tifa_gm"] == truth["soft_tifa_am"] == truth["vqascore"] == 100
    assert g2.summarize(items, blank_soft)["soft_tifa_gm"] < 1
    with pytest.raises(EmfBenchError, match="cannot answer"):
        oracle.answer(blank, ["Is it sunny?"], ["Yes"])


def test_eval_world_geneval2_on_a_probe(capsys, tmp_path):
    from tests_shared import run_cli

    code, _, err = run_cli(capsys, "train-probe", "--encoder", "class-label", "--size", "tiny",
                           "--budget", "2steps", "--train-size", "64", "--batch-size", "8",
                           "--device", "cpu", "--no-quick-eval", "--run-dir", tmp_path)
    assert code == 0, err
    code, out, err = run_cli(capsys, "eval", "--model", "probe:class-label", "--benchmark",
                             "world-geneval2", "--steps", "1,2", "--images-per-prompt", "2",
                             "--limit", "12", "--device", "cpu", "--run-dir", tmp_path)
    assert code == 0, err
    assert "world-oracle" in out and "Soft-TIFA GM" in " ".join(out.split())
