from collections import Counter

import numpy as np
import pytest
from scipy import ndimage

from emf_bench.errors import EmfBenchError
from emf_bench.spatial import box_from_mask, relative_position
from emf_bench.world import (
    DENSE_TASK,
    GENEVAL_TASKS,
    Meaning,
    ObjectGroup,
    Relation,
    World,
    WorldConfig,
    parse,
)
from emf_bench.world.grammar import all_parses
from emf_bench.world.palette import COLORS
from emf_bench.world.scene import object_mask, sample_scene


@pytest.fixture(scope="module")
def world():
    return World()


def test_default_catalogue_enumerates_every_geneval_meaning_once(world):
    counts = Counter(e.task for e in world.catalogue)
    # 3 shapes, 4 colours, counts 2-4: pairs of shapes = 3.
    assert counts == {"single_object": 3, "two_object": 3, "counting": 9, "colors": 12,
                      "position": 12, "color_attr": 36, DENSE_TASK: 64}
    assert [e.id for e in world.catalogue] == list(range(len(world.catalogue)))
    assert len({e.meaning.key for e in world.catalogue}) == len(world.catalogue)


def test_geneval_suite_rows_follow_geneval_metadata_schema(world):
    suite = world.geneval_suite()
    assert {r["tag"] for r in suite} == set(GENEVAL_TASKS)
    for row in suite:
        assert set(row) <= {"tag", "include", "exclude", "prompt"}
        assert parse(row["prompt"]) is not None
        for clause in row["include"]:
            assert clause["class"] in world.config.shapes and clause["count"] >= 1
            assert clause.get("color", "red") in world.config.colors
        if row["tag"] == "counting":
            (inc,), (exc,) = row["include"], row["exclude"]
            assert exc == {"class": inc["class"], "count": inc["count"] + 1}
        else:
            assert "exclude" not in row
        if row["tag"] == "position":
            reference, subject = row["include"]
            assert "position" not in reference and subject["position"][1] == 0
            assert row["prompt"] == (f"a photo of a {subject['class']} "
                                     f"{subject['position'][0]} a {reference['class']}")


def test_dense_suite_has_three_to_six_objects_and_dpg_question_rows(world):
    suite = world.dense_suite()
    assert len(suite.prompts) == world.config.dense_prompts
    for item_id, prompt in suite.prompts.items():
        meaning = parse(prompt)
        assert 3 <= meaning.n_objects <= 6
        assert world.catalogue[suite.meaning_ids[item_id]].meaning == meaning
    assert any(parse(p).relations for p in suite.prompts.values())
    by_item: dict[str, list[dict]] = {}
    for row in suite.questions:
        by_item.setdefault(row["item_id"], []).append(row)
    assert set(by_item) == set(suite.prompts)
    for rows in by_item.values():
        ids = [int(r["proposition_id"]) for r in rows]
        assert ids == list(range(1, len(rows) + 1))
        for r in rows:
            deps = [int(d) for d in r["dependency"].split(",")]
            assert deps == [0] or all(0 < d < int(r["proposition_id"]) for d in deps)
            level2 = r["tuple"].split("(")[0].strip()
            assert level2 == f"{r['category_broad']} - {r['category_detailed']}"


def test_no_evaluation_prompt_appears_among_training_captions(world):
    evaluation = [r["prompt"] for r in world.geneval_suite()]
    evaluation += list(world.dense_suite().prompts.values())
    training = set(world.training_set(20_000, seed=0).captions)
    assert not training & set(evaluation)
    # Stronger: an evaluation prompt has exactly one reading, in a held-out frame, so no
    # training phrasing (whose captions always read back in a training frame) can produce it.
    for prompt in evaluation:
        ((_, frame),) = list(all_parses(prompt))
        assert frame.split == "eval", prompt


def test_training_set_covers_every_meaning_and_task_with_training_phrasings(world):
    examples = list(world.training_set(6000, seed=1))
    assert {e.meaning_id for e in examples} == {e.id for e in world.catalogue}
    tasks = Counter(e.task for e in examples)
    assert set(tasks) == set(GENEVAL_TASKS) | {DENSE_TASK}
    assert min(tasks.values()) > 0.7 * 6000 / 7  # tasks drawn uniformly
    for e in examples[:500]:
        meaning, frame = next(all_parses(e.caption))
        assert frame.split == "train"
        assert world.catalogue[e.meaning_id].meaning == meaning


def test_a_training_set_can_hold_only_some_tasks(world):
    examples = list(world.training_set(200, seed=1, tasks=("position", "color_attr")))
    assert {e.task for e in examples} == {"position", "color_attr"}
    with pytest.raises(EmfBenchError, match="unknown training task 'positions'"):
        world.training_set(10, tasks=("positions",))


def test_training_set_is_reproducible_and_seeded(world):
    a, b = world.training_set(50, seed=3), world.training_set(50, seed=3)
    c = world.training_set(50, seed=4)
    assert [x.caption for x in a] == [x.caption for x in b]
    assert [x.scene for x in a] == [x.scene for x in b]
    assert np.array_equal(a.image(7), b.image(7))
    assert [x.caption for x in a] != [x.caption for x in c]
    assert a[10] == a[10]  # random access gives the same example every time
    with pytest.raises(IndexError):
        a[50]


def _check_scene_shows_meaning(world, scene, meaning, size):
    groups = Counter((o.shape, o.color, o.group) for o in scene.objects)
    for gi, g in enumerate(meaning.groups):
        found = sum(n for (s, c, i), n in groups.items() if i == gi and s == g.shape
                    and (g.color is None or c == g.color))
        assert found == g.count
    assert len(scene.objects) == meaning.n_objects
    masks = [object_mask(o, size) for o in scene.objects]
    gap_px = int(world.config.gap * size) - 1
    grown = [ndimage.binary_dilation(m, iterations=max(gap_px, 1)) for m in masks]
    for i in range(len(masks)):
        assert masks[i].any()
        for j in range(i + 1, len(masks)):
            assert not (grown[i] & masks[j]).any(), "objects touch"
    boxes = [box_from_mask(m) for m in masks]
    for rel in meaning.relations:
        for a, o in enumerate(scene.objects):
            for b, p in enumerate(scene.objects):
                if o.group == rel.subject and p.group == rel.reference:
                    assert rel.predicate in relative_position(boxes[a], boxes[b])


@pytest.mark.parametrize("size", [32, 128, 257])
def test_scenes_show_their_meaning_without_overlaps_at_every_render_size(world, size):
    rng = np.random.default_rng(size)
    for entry in world.catalogue:
        for _ in range(3):
            scene = world.sample_scene(entry.meaning, rng)
            _check_scene_shows_meaning(world, scene, entry.meaning, size)


def test_render_uses_palette_colours_on_gray_background(world):
    scene = world.sample_scene(parse("a red circle and a blue square"), np.random.default_rng(0))
    image = world.render(scene)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    colours = {tuple(p) for p in image.reshape(-1, 3)}
    assert colours == {(128, 128, 128), COLORS["red"], COLORS["blue"]}
    assert world.render(scene, 96).shape == (96, 96, 3)


@pytest.mark.parametrize("meaning, message", [
    (Meaning((ObjectGroup("circle", None, 7),)), "at most 6"),
    (Meaning((ObjectGroup("circle", "purple"),)), "not in this world"),
    (Meaning((ObjectGroup("star"),)), "not in this world"),
    (Meaning((ObjectGroup("circle"), ObjectGroup("square")),
             (Relation(0, "left of", 1), Relation(1, "left of", 0))), "contradictory"),
    (Meaning((ObjectGroup("circle"), ObjectGroup("square"), ObjectGroup("triangle")),
             (Relation(0, "left of", 1), Relation(1, "left of", 2), Relation(2, "left of", 0))),
     "no placement"),
])
def test_impossible_scene_requests_raise_one_clear_error(meaning, message):
    with pytest.raises(EmfBenchError, match=message):
        sample_scene(meaning, WorldConfig(), np.random.default_rng(0))


@pytest.mark.parametrize("kwargs, message", [
    ({"canvas": 16}, "too small"),
    ({"shapes": ("circle", "sqare")}, "did you mean 'square'"),
    ({"colors": ("red", "grey")}, "unknown colour 'grey'"),
    ({"shapes": ("circle", "diamond")}, "a diamond needs"),
    ({"max_objects": 16}, "do not fit"),
    ({"counts": (2, 9)}, "counting prompts"),
    ({"split": "random"}, "unknown split"),
    ({"shapes": ("circle",)}, "at least 2 shapes"),
])
def test_bad_world_configs_are_rejected(kwargs, message):
    with pytest.raises(EmfBenchError, match=message):
        WorldConfig(**kwargs)


def test_config_round_trips_and_unknown_keys_are_named():
    config = WorldConfig(canvas=48, shapes=("circle", "diamond", "ring"))
    assert WorldConfig.from_dict(config.to_dict()) == config
    with pytest.raises(EmfBenchError,
                       match=r"unknown key in world\.yaml: 'canvass'; did you mean 'canvas'\?"):
        WorldConfig.from_dict({"canvass": 32}, where="world.yaml")


def test_larger_worlds_are_a_configuration_away():
    world = World(WorldConfig(canvas=48, shapes=("circle", "square", "triangle", "diamond",
                                                 "cross", "ring"), colors=tuple(COLORS)))
    suite = world.geneval_suite()
    tags = Counter(r["tag"] for r in suite)
    assert tags["color_attr"] == 100 and tags["single_object"] == 6  # capped like GenEval
    rng = np.random.default_rng(0)
    for entry in world.catalogue[::40]:
        _check_scene_shows_meaning(world, world.sample_scene(entry.meaning, rng),
                                   entry.meaning, 48)


def test_compositional_split_holds_out_combinations_but_keeps_every_word():
    world = World(WorldConfig(split="compositional"))
    heldout = {e.id for e in world.catalogue if e.heldout}
    assert heldout and all(world.catalogue[i].task in ("colors", "position", "color_attr",
                                                       DENSE_TASK) for i in heldout)
    for task in ("colors", "color_attr"):
        entries = world.entries(task)
        assert sum(e.heldout for e in entries) == round(0.25 * len(entries))
        seen = [e.meaning for e in entries if not e.heldout]
        assert {g.color for m in seen for g in m.groups} == set(world.config.colors)
        assert {g.shape for m in seen for g in m.groups} == set(world.config.shapes)
    assert not heldout & {e.meaning_id for e in world.training_set(5000)}
    flags = [r["heldout"] for r in world.geneval_suite()]
    assert any(flags) and not all(flags)
    # The phrasing split has no held-out meanings and no flag in its metadata.
    assert not any(e.heldout for e in World().catalogue)


def test_class_labels_are_catalogue_ids_and_other_text_is_an_error(world):
    assert world.class_label("a photo of a red circle") == world.class_label(
        "one circle that is red on a gray background")
    assert world.class_label("a circle") != world.class_label("a red circle")
    with pytest.raises(EmfBenchError, match="not a caption"):
        world.class_label("a cat on a mat")
    with pytest.raises(EmfBenchError, match="not a meaning of this world"):
        world.class_label("a photo of five purple rings")
