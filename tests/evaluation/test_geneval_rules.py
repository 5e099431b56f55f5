"""GenEval's rules on hand-made detections: every tag and the edge cases."""

import pytest

from emf_bench.evaluation.geneval import GenEvalRules, keep_detections, score_image, summarize
from emf_bench.spatial import Detection


def det(label, box, score=0.95, color=None):
    return Detection(label, box, score, color=color)


def meta(tag, include, exclude=None, prompt="p"):
    out = {"tag": tag, "prompt": prompt, "include": include}
    if exclude:
        out["exclude"] = exclude
    return out


def test_single_object_threshold_is_strict():
    m = meta("single_object", [{"class": "dog", "count": 1}])
    assert score_image([det("dog", (0, 0, 10, 10), 0.31)], m)["correct"]
    out = score_image([det("dog", (0, 0, 10, 10), 0.3)], m)
    assert not out["correct"] and out["reason"] == "expected dog>=1, found 0"


def test_counting_needs_exactly_n_above_09():
    m = meta("counting", [{"class": "clock", "count": 2}], [{"class": "clock", "count": 3}])
    two = [det("clock", (0, 0, 5, 5), 0.95), det("clock", (10, 0, 15, 5), 0.92)]
    assert score_image(two, m)["correct"]
    # A third clock at 0.85 is below the counting threshold: ignored.
    assert score_image([*two, det("clock", (20, 0, 25, 5), 0.85)], m)["correct"]
    out = score_image([*two, det("clock", (20, 0, 25, 5), 0.91)], m)
    assert not out["correct"] and out["reason"] == "expected clock<3, found 3"
    out = score_image([*two[:1], det("clock", (10, 0, 15, 5), 0.89)], m)
    assert out["reason"] == "expected clock>=2, found 1"


def test_two_object_and_colors():
    m = meta("two_object", [{"class": "cat", "count": 1}, {"class": "dog", "count": 1}])
    assert score_image([det("cat", (0, 0, 5, 5)), det("dog", (9, 9, 12, 12))], m)["correct"]
    assert score_image([det("cat", (0, 0, 5, 5))], m)["reason"] == "expected dog>=1, found 0"
    c = meta("colors", [{"class": "car", "count": 1, "color": "red"}])
    assert score_image([det("car", (0, 0, 5, 5), color="red")], c)["correct"]
    out = score_image([det("car", (0, 0, 5, 5), color="blue")], c)
    assert out["reason"] == "expected red car>=1, found 0 red; and 1 blue"


def test_color_attr_checks_each_group_with_its_own_colour():
    m = meta("color_attr", [{"class": "cup", "count": 1, "color": "red"},
                            {"class": "bowl", "count": 1, "color": "green"}])
    good = [det("cup", (0, 0, 5, 5), color="red"), det("bowl", (9, 0, 14, 5), color="green")]
    assert score_image(good, m)["correct"]
    swapped = [det("cup", (0, 0, 5, 5), color="green"), det("bowl", (9, 0, 14, 5), color="red")]
    reason = score_image(swapped, m)["reason"].splitlines()
    assert reason == ["expected red cup>=1, found 0 red; and 1 green",
                      "expected green bowl>=1, found 0 green; and 1 red"]


POSITION = meta("position", [{"class": "dog", "count": 1},
                             {"class": "cat", "count": 1, "position": ["right of", 0]}])


def test_position_rule_and_diagonals():
    dog = det("dog", (0, 0, 10, 10))
    assert score_image([dog, det("cat", (30, 0, 40, 10))], POSITION)["correct"]
    # Diagonal: both "right of" and "below" hold; right of is enough.
    assert score_image([dog, det("cat", (30, 30, 40, 40))], POSITION)["correct"]
    out = score_image([dog, det("cat", (0, 30, 10, 40))], POSITION)
    assert out["reason"] == "expected cat right of target, found below target"


def test_margins_that_cancel_the_offset_mean_no_relation():
    # Centres 3 px apart, boxes 20 px wide: 0.1 * (20 + 20) = 4 > 3, nothing holds.
    out = score_image([det("dog", (0, 0, 20, 20)), det("cat", (3, 0, 23, 20))], POSITION)
    assert not out["correct"] and out["reason"] == "expected cat right of target, found  target"


def test_a_failed_reference_group_fails_the_relation():
    out = score_image([det("cat", (30, 0, 40, 10))], POSITION)
    assert out["reason"].splitlines() == ["expected dog>=1, found 0",
                                          "no target for cat to be right of"]


def test_at_most_16_per_class_and_optional_nms():
    many = [det("kite", (i, 0, i + 5, 5), 0.5 + i / 100) for i in range(20)]
    kept = keep_detections(many, "single_object")
    assert len(kept["kite"]) == 16 and kept["kite"][0].score == max(d.score for d in many)
    overlapping = [det("kite", (0, 0, 10, 10), 0.9), det("kite", (1, 0, 11, 10), 0.8)]
    assert len(keep_detections(overlapping, "single_object")["kite"]) == 2  # NMS off
    rules = GenEvalRules(nms_threshold=0.5)
    assert len(keep_detections(overlapping, "single_object", rules)["kite"]) == 1
    # Constants are overridable: a lower counting threshold keeps the 0.85 clock.
    m = meta("counting", [{"class": "clock", "count": 1}], [{"class": "clock", "count": 2}])
    two = [det("clock", (0, 0, 5, 5), 0.95), det("clock", (9, 0, 14, 5), 0.85)]
    assert score_image(two, m)["correct"]
    assert not score_image(two, m, rules=GenEvalRules(counting_threshold=0.8))["correct"]


def test_summary_is_the_unweighted_task_mean():
    rows = ([{"tag": "single_object", "prompt": "a", "correct": True}] * 3
            + [{"tag": "counting", "prompt": "b", "correct": False},
               {"tag": "counting", "prompt": "c", "correct": True}])
    s = summarize(rows)
    assert s["tasks"] == {"single_object": 1.0, "counting": 0.5}
    assert s["overall"] == pytest.approx(0.75)
    assert s["correct_images"] == pytest.approx(0.8)
    assert s["correct_prompts"] == pytest.approx(2 / 3)
