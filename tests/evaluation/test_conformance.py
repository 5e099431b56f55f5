"""The official GenEval and DPG-Bench files (read from ../shared/data, never copied)."""

import collections

import pytest
from tests_shared import SHARED_DATA

from emf_bench.evaluation.benchmarks.geneval import load_geneval_metadata
from emf_bench.evaluation.detectors import GENEVAL_CLASSES
from emf_bench.evaluation.dpg import read_prompts


def test_official_geneval_metadata_parses(geneval_metadata_file):
    rows = load_geneval_metadata(geneval_metadata_file)
    assert len(rows) == 553
    counts = collections.Counter(r["tag"] for r in rows)
    assert [counts[t] for t in ("single_object", "two_object", "counting", "colors",
                                "position", "color_attr")] == [80, 99, 80, 94, 100, 100]
    for r in rows:
        assert r["include"]
        if r["tag"] == "counting":
            assert r["exclude"] == [{"class": r["include"][0]["class"],
                                     "count": r["include"][0]["count"] + 1}]
        if r["tag"] == "position":
            assert r["include"][1]["position"][1] == 0
    names = {c["class"] for r in rows for c in r["include"]}
    assert names <= set(GENEVAL_CLASSES)


def test_class_names_match_genevals_object_list():
    path = SHARED_DATA / "geneval" / "object_names.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    assert tuple(path.read_text().split("\n")[:80]) == GENEVAL_CLASSES


def test_dpg_prompt_files_load():
    folder = SHARED_DATA / "dpg-bench" / "prompts"
    if not folder.exists():
        pytest.skip(f"{folder} not found")
    prompts = read_prompts(folder)
    assert len(prompts) == 1065
    words = sum(len(p.split()) for p in prompts.values()) / len(prompts)
    assert 50 < words < 90  # about 67 words on average
