import numpy as np
import pytest

from emf_bench.spatial import box_from_mask, relation_margin, relative_position


def box(cx, cy, w, h):
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


@pytest.mark.parametrize("a, b, expected", [
    (box(10, 50, 10, 10), box(50, 50, 10, 10), {"left of"}),
    (box(90, 50, 10, 10), box(50, 50, 10, 10), {"right of"}),
    (box(50, 10, 10, 10), box(50, 50, 10, 10), {"above"}),  # image y grows downward
    (box(50, 90, 10, 10), box(50, 50, 10, 10), {"below"}),
    # Exact diagonal: each axis keeps 0.68 of the offset's length after revision -> both hold.
    (box(10, 10, 10, 10), box(50, 50, 10, 10), {"left of", "above"}),
    # Boxes so large that the margin 0.1 * (wA + wB) swallows the whole offset: no relation.
    (box(45, 50, 30, 30), box(50, 50, 30, 30), set()),
    # Same centre: nothing.
    (box(50, 50, 10, 10), box(50, 50, 20, 20), set()),
    # Mostly horizontal: only "left of" survives (dy/|offset| is small).
    (box(10, 45, 10, 10), box(50, 50, 10, 10), {"left of"}),
])
def test_relative_position_follows_geneval_rule(a, b, expected):
    assert relative_position(a, b) == expected


def test_revision_shrinks_each_axis_by_ten_percent_of_the_summed_sizes():
    # offset (-20, 12): revised x = 20 - 0.1*(10+10) = 18 -> dx = -18/23.3 = -0.77 (left of);
    # revised y = 12 - 0.1*(40+40) = 4 -> dy = 0.17: not below, although raw dy is 0.51.
    a, b = box(30, 62, 10, 40), box(50, 50, 10, 40)
    assert relative_position(a, b) == {"left of"}


def test_relation_is_antisymmetric_and_margin_agrees_with_the_rule():
    rng = np.random.default_rng(0)
    inverse = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    for _ in range(2000):
        a = box(*rng.uniform(0, 100, 2), *rng.uniform(1, 40, 2))
        b = box(*rng.uniform(0, 100, 2), *rng.uniform(1, 40, 2))
        rel = relative_position(a, b)
        assert {inverse[r] for r in rel} == relative_position(b, a)
        for name in inverse:
            assert (relation_margin(a, b, name) > 0) == (name in rel)


def test_box_from_mask_is_tight_and_exclusive():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    assert box_from_mask(mask) == (3.0, 2.0, 9.0, 5.0)
    assert box_from_mask(np.zeros((4, 4), bool)) is None
