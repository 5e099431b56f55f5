from dataclasses import replace

import numpy as np
import pytest

from emf_bench.errors import EmfBenchError
from emf_bench.world import Scene, World, parse
from emf_bench.world.questions import QUESTION_COLUMNS, parse_question, question_rows


@pytest.fixture(scope="module")
def world():
    return World()


def _answers(world, scene, rows):
    return world.oracle().answer(world.render(scene), [r["question_natural_language"]
                                                       for r in rows])


def test_ground_truth_scenes_answer_yes_to_every_dense_question(world):
    suite = world.dense_suite()
    rng = np.random.default_rng(0)
    for item_id, prompt in suite.prompts.items():
        rows = [r for r in suite.questions if r["item_id"] == item_id]
        for _ in range(2):
            scene = world.sample_scene(parse(prompt), rng)
            assert _answers(world, scene, rows) == ["yes"] * len(rows), prompt


def _scene_and_rows(world, prompt, seed=0):
    meaning = parse(prompt)
    return world.sample_scene(meaning, np.random.default_rng(seed)), question_rows(
        "x", prompt, meaning)


def test_removing_an_object_fails_the_questions_about_it(world):
    scene, rows = _scene_and_rows(world, "A red circle, two blue squares and a green triangle. "
                                         "The red circle is left of the green triangle.")
    circle = next(o for o in scene.objects if o.shape == "circle")
    answers = _answers(world, Scene(tuple(o for o in scene.objects if o is not circle)), rows)
    by_question = dict(zip((r["question_natural_language"] for r in rows), answers,
                           strict=True))
    assert by_question["Is there a circle?"] == "no"
    assert by_question["Is there a red circle?"] == "no"
    assert by_question["Is the red circle left of the green triangle?"] == "no"
    assert by_question["Are there exactly two blue squares?"] == "yes"
    assert by_question["Is there a green triangle?"] == "yes"


def test_recolouring_and_extra_objects_fail_exactly_colour_and_count(world):
    scene, rows = _scene_and_rows(world, "two blue squares and a green triangle")
    square = next(o for o in scene.objects if o.shape == "square")
    recoloured = Scene(tuple(replace(o, color="red") if o is square else o
                             for o in scene.objects))
    answers = dict(zip((r["question_natural_language"] for r in rows),
                       _answers(world, recoloured, rows), strict=True))
    assert answers == {"Is there a square?": "yes", "Is there a triangle?": "yes",
                       "Is there a blue square?": "yes",
                       "Are there exactly two blue squares?": "no",
                       "Is there a green triangle?": "yes"}


def test_moving_an_object_fails_only_the_relation(world):
    scene, rows = _scene_and_rows(world, "a red circle, a blue square and a green triangle. "
                                         "The red circle is above the blue square.")
    circle = next(o for o in scene.objects if o.shape == "circle")
    square = next(o for o in scene.objects if o.shape == "square")
    swapped = Scene(tuple(
        replace(o, x=square.x, y=square.y) if o is circle else
        replace(o, x=circle.x, y=circle.y) if o is square else o for o in scene.objects))
    answers = _answers(world, swapped, rows)
    assert answers == ["yes"] * (len(rows) - 1) + ["no"]
    assert rows[-1]["category_broad"] == "relation"


def test_question_rows_have_the_dpg_bench_columns_and_dependencies():
    rows = question_rows("shapes0", "two red circles left of", parse(
        "two red circles and a blue square"))
    assert all(tuple(r) == QUESTION_COLUMNS for r in rows)
    count = next(r for r in rows if r["category_detailed"] == "count")
    colour = next(r for r in rows if r["tuple"] == "attribute - color (circle, red)")
    assert count["tuple"] == "other - count (red circles, ==2)"
    assert count["dependency"] == colour["proposition_id"]


def test_unknown_questions_are_a_clear_error(world):
    assert parse_question("Are there exactly three green triangles?").count == 3
    with pytest.raises(EmfBenchError, match="cannot answer 'Is the cat happy\\?'"):
        world.oracle().answer(np.zeros((32, 32, 3), np.uint8), ["Is the cat happy?"])
