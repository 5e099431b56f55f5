"""DPG-Bench's scoring rules, CSV checks and the official-compat switch."""

import numpy as np
import pytest

from emf_bench.errors import EmfBenchError
from emf_bench.evaluation.dpg import (
    DPGQuestion,
    adjusted_scores,
    build_items,
    read_prompts,
    read_questions,
    split_grid,
    summarize,
)

HEADER = ("item_id,text,keywords,proposition_id,dependency,category_broad,category_detailed,"
          "tuple,question_natural_language\n")


def write_csv(path, rows):
    path.write_text(HEADER + "".join(
        f"{item},t,k,{pid},\"{dep}\",b,d,{tup},{q}\n" for item, pid, dep, tup, q in rows))
    return path


ROWS = [("a", 1, "0", "entity - whole (cat)", "Is there a cat?"),
        ("a", 2, "1", "attribute - color (cat, black)", "Is the cat black?"),
        ("a", 3, "1,2", "relation - spatial (cat, mat, on)", "Is the black cat on the mat?"),
        ("b", 1, "0", "entity - whole (dog)", "Is there a dog?"),
        ("b", 2, "0", "global - ()", "Is it sunny?")]


def test_dependency_zeroing_is_transitive_in_order():
    qs = [DPGQuestion(1, (), "entity - whole (x)", "q1"), DPGQuestion(2, (1,), "a - b (x)", "q2"),
          DPGQuestion(3, (2,), "r - s (x)", "q3")]
    assert adjusted_scores(qs, ["yes", "yes", "yes"]) == [1.0, 1.0, 1.0]
    assert adjusted_scores(qs, ["no", "yes", "yes"]) == [0.0, 0.0, 0.0]
    assert adjusted_scores(qs, ["yes", "Yes", "yes"]) == [1.0, 0.0, 0.0]  # exactly "yes"


def test_scores_and_categories(tmp_path):
    questions = read_questions(write_csv(tmp_path / "q.csv", ROWS))
    items = build_items({"a": "A", "b": "B"}, questions)
    yes3, tiles = ["yes"] * 3, {}
    tiles["a"] = [{"tile": t, "answers": a, "scores": adjusted_scores(items[0].questions, a),
                   "score": float(np.mean(adjusted_scores(items[0].questions, a)))}
                  for t, a in enumerate([yes3, yes3, ["no", "yes", "yes"], yes3])]
    tiles["b"] = [{"tile": t, "answers": ["yes", "no"], "scores": [1.0, 0.0], "score": 0.5}
                  for t in range(4)]
    s = summarize(items, tiles)
    assert s["overall"] == pytest.approx((0.75 + 0.5) / 2 * 100)
    assert s["level1"]["entity"] == pytest.approx((3 + 4) / 8 * 100)
    assert s["level2"]["relation - spatial"] == pytest.approx(75.0)
    # Official numbers: last tile only, raw answers.
    official = summarize(items, tiles, official_compat=True)
    assert official["level2"]["relation - spatial"] == 100.0
    assert official["overall"] == s["overall"]


def test_official_compat_skips_the_first_row_and_drops_that_prompt(tmp_path):
    csv = write_csv(tmp_path / "q.csv", ROWS)
    with pytest.raises(EmfBenchError):  # the corrected default refuses dangling dependencies
        build_items({"a": "A", "b": "B"}, read_questions(csv, official_compat=True))
    items = build_items({"a": "A", "b": "B"}, read_questions(csv, official_compat=True),
                        strict=False)
    assert items[0].unscorable and not items[1].unscorable
    tiles = {"b": [{"tile": t, "answers": ["yes", "yes"], "scores": [1.0, 1.0], "score": 1.0}
                   for t in range(4)]}
    s = summarize(items, tiles, official_compat=True)
    assert s["skipped"] == ["a"] and s["prompts"] == 1 and s["overall"] == 100.0


@pytest.mark.parametrize("content, message", [
    ("item_id,text\na,b\n", "missing column(s) proposition_id"),
    (HEADER + "a,t,k,x,0,b,d,t,q\n", "must be integers"),
    (HEADER, "no questions"),
])
def test_bad_csvs_are_named(tmp_path, content, message):
    (tmp_path / "q.csv").write_text(content)
    with pytest.raises(EmfBenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_questions(tmp_path / "q.csv")


def test_dangling_dependencies_and_missing_questions(tmp_path):
    rows = [("a", 1, "0", "e - w (x)", "q"), ("a", 2, "7", "e - w (y)", "q2")]
    questions = read_questions(write_csv(tmp_path / "q.csv", rows))
    with pytest.raises(EmfBenchError, match="depends on missing proposition"):
        build_items({"a": "A"}, questions)
    with pytest.raises(EmfBenchError, match="'z' has no questions"):
        build_items({"z": "Z"}, questions)


@pytest.mark.parametrize("rows, message", [
    ([("a", 1, "0", "t", "q"), ("a", 1, "0", "t", "q again")],
     r"item 'a': proposition id\(s\) 1 used twice"),
    ([("a", 1, "1", "t", "q")], "item 'a': proposition 1 depends on itself"),
    ([("a", 1, "0", "t", "q"), ("a", 2, "3", "t", "q2"), ("a", 3, "2", "t", "q3")],
     "item 'a': dependency cycle 2 -> 3 -> 2"),
    ([("a", 1, "3", "t", "q"), ("a", 2, "1", "t", "q2"), ("a", 3, "2", "t", "q3")],
     "item 'a': dependency cycle 1 -> 3 -> 2 -> 1"),
])
def test_questions_that_are_not_a_dependency_tree_are_refused(tmp_path, rows, message):
    questions = read_questions(write_csv(tmp_path / "q.csv", rows))
    with pytest.raises(EmfBenchError, match=message):
        build_items({"a": "A"}, questions)
    # official-compat keeps such an item, marked unscorable, instead of failing the run
    (item,) = build_items({"a": "A"}, questions, strict=False)
    assert item.unscorable


def test_questions_without_a_prompt_and_empty_prompts_are_reported(tmp_path, capsys):
    rows = [("a", 1, "0", "t", "q"), ("b", 1, "0", "t", "q"), ("c", 1, "0", "t", "q")]
    questions = read_questions(write_csv(tmp_path / "q.csv", rows))
    assert [i.item_id for i in build_items({"a": "A"}, questions)] == ["a"]
    assert "2 item(s) with questions but no prompt file are not evaluated: b, c" in \
        capsys.readouterr().err
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts/a.txt").write_text("  \n")
    with pytest.raises(EmfBenchError, match=r"prompt file .*a.txt is empty"):
        read_prompts(tmp_path / "prompts")


def test_grid_split_and_wrong_sizes():
    grid = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    tiles = split_grid(grid)
    assert [t.shape for t in tiles] == [(4, 4, 3)] * 4
    assert np.array_equal(tiles[1], grid[:4, 4:]) and np.array_equal(tiles[2], grid[4:, :4])
    with pytest.raises(EmfBenchError, match="2R x 2R"):
        split_grid(np.zeros((8, 6, 3), dtype=np.uint8))
