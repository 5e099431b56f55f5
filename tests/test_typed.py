from pathlib import Path
from typing import Any, Literal

import pytest

from emf_bench.errors import EmfBenchError
from emf_bench.typed import check_types, check_value, describe, matches
from emf_bench.world import WorldConfig


@pytest.mark.parametrize("value, kind, ok", [
    (True, bool, True), ("yes please", bool, False), (1, bool, False), ("true", bool, False),
    (3, int, True), (True, int, False), (3.0, int, False), ("3", int, False),
    (3, float, True), (2.5, float, True), (False, float, False), ("2.5", float, False),
    ("a", str, True), (None, str, False), (None, str | None, True), (4, int | str, True),
    ("x", Path, True), ({"a": 1}, dict[str, int], True), ({"a": "b"}, dict[str, int], False),
    ([1, 2], tuple[int, ...], True), ([1, "2"], tuple[int, ...], False),
    ([3, 6], tuple[int, int], True), ([3], tuple[int, int], False), ("ab", list[str], False),
    ("prompt", Literal["prompt", "image-tokens"], True), ("other", Literal["prompt"], False),
    (object(), Any, True),
])
def test_matches_takes_yaml_values_at_their_word(value, kind, ok):
    assert matches(value, kind) is ok


def test_errors_name_the_field_the_type_and_the_value():
    assert describe(bool) == "a boolean (true or false)"
    assert describe(int | None) == "an integer or null"
    assert describe(tuple[str, ...]) == "a list of strings"
    with pytest.raises(EmfBenchError, match=r"^card.yaml: flag must be a boolean \(true or "
                                            r"false\), got 'no'$"):
        check_value("no", bool, "flag", "card.yaml")


def test_world_config_fields_are_checked_by_type():
    for data, message in [({"canvas": "big"}, "canvas must be an integer, got 'big'"),
                          ({"shapes": "circle"}, "shapes must be a list of strings"),
                          ({"holdout": "a quarter"}, "holdout must be a number"),
                          ({"dense_objects": [3]}, "dense_objects must be a list of 2 values")]:
        with pytest.raises(EmfBenchError, match=message):
            WorldConfig.from_dict(data, where="world.yaml")
    with pytest.raises(EmfBenchError, match="must be a mapping"):
        WorldConfig.from_dict(["canvas"], where="world.yaml")
    assert WorldConfig.from_dict({"canvas": 48, "shapes": ["circle", "square"]}).canvas == 48
    check_types(WorldConfig, {"min_size": 1}, "ints are numbers")
