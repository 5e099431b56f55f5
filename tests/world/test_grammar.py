import itertools
import json
import re

import numpy as np
import pytest

from emf_bench.world import World
from emf_bench.world.grammar import (
    FRAMES,
    GENEVAL_PHRASING,
    CaptionParseError,
    Phrasing,
    all_parses,
    all_phrasings,
    parse,
    parse_with_frame,
    realize,
    sample_phrasing,
)
from emf_bench.world.meaning import Meaning, ObjectGroup, Relation


def test_every_catalogue_meaning_round_trips_through_random_phrasings_of_both_splits():
    world = World()
    rng = np.random.default_rng(0)
    for entry in world.catalogue:
        for split in ("train", "eval"):
            for _ in range(10):
                phrasing = sample_phrasing(rng, split, len(entry.meaning.groups))
                caption = realize(entry.meaning, phrasing)
                meaning, frame = parse_with_frame(caption)
                assert meaning == entry.meaning, caption
                assert frame.split == split, caption


@pytest.mark.parametrize("meaning", [
    Meaning((ObjectGroup("circle", "red"), ObjectGroup("square", "blue"))),
    Meaning((ObjectGroup("circle"), ObjectGroup("triangle")), (Relation(1, "below", 0),)),
    Meaning((ObjectGroup("triangle", "yellow", 3), ObjectGroup("square", "orange"))),
])
def test_exhaustive_phrasings_round_trip_and_parse_exactly_once(meaning):
    canonical = meaning.canonical()
    seen = set()
    for split in ("train", "eval"):
        for phrasing in all_phrasings(split, len(meaning.groups)):
            caption = realize(meaning, phrasing)
            if caption in seen:
                continue
            seen.add(caption)
            readings = list(all_parses(caption))
            assert len(readings) == 1, (caption, readings)
            assert readings[0][0] == canonical, caption
            assert readings[0][1].split == split, caption
    assert len(seen) > 100  # the phrasing space is really exercised


def test_relation_direction_and_group_order_do_not_change_the_meaning():
    assert parse("a photo of a circle left of a square") == parse(
        "a square to the right of a circle")
    assert parse("a circle above a triangle") == parse("a triangle beneath a circle")
    assert parse("a red circle and a blue square") == parse("a blue square with a red circle")
    assert parse("a circle left of a square") != parse("a circle right of a square")
    assert parse("a red circle and a blue square") != parse("a blue circle and a red square")


def test_geneval_phrasing_matches_geneval_templates():
    g = realize(Meaning((ObjectGroup("circle", "orange"), ObjectGroup("square", "blue"))))
    assert g == "a photo of an orange circle and a blue square"
    assert realize(Meaning((ObjectGroup("triangle", None, 3),))) == "a photo of three triangles"
    pos = Meaning((ObjectGroup("circle"), ObjectGroup("square")), (Relation(0, "right of", 1),))
    assert realize(pos, GENEVAL_PHRASING) == "a photo of a circle right of a square"


def _template(prompt: str, nouns: list[str], colors: list[str]) -> str:
    """A prompt with its nouns and colour words replaced by placeholders."""
    out = prompt
    for noun in sorted(nouns, key=len, reverse=True):
        out = re.sub(rf"\b{re.escape(noun)}s?\b", "N", out)
    for color in colors:
        out = re.sub(rf"\b{color}\b", "C", out)
    return re.sub(r"\ban? ", "a ", out)


def test_world_geneval_prompts_use_exactly_the_official_templates(geneval_metadata_file):
    official = [json.loads(line) for line in geneval_metadata_file.read_text().splitlines()]
    colors = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black",
              "white"]
    official_templates: dict[str, set[str]] = {}
    for row in official:
        nouns = [c["class"] for c in row["include"]]
        official_templates.setdefault(row["tag"], set()).add(
            _template(row["prompt"], nouns, colors))
    world = World()
    for row in world.geneval_suite():
        nouns = [c["class"] for c in row["include"]]
        assert _template(row["prompt"], nouns, colors) in official_templates[row["tag"]], row


@pytest.mark.parametrize("caption", [
    "a photo of a dog",
    "",
    "a photo of a circle left of",
    "a photo of two circle",
    "a photo of a circles",
    "a red circle and a red circle",  # two groups for the same objects
    "a circle left of a square. The circle is right of the square.",  # contradiction
    "a red circle. The blue square is above the red circle.",  # unknown referent
])
def test_non_world_captions_are_rejected_with_a_clear_error(caption):
    with pytest.raises(CaptionParseError, match="not a caption of the shapes world"):
        parse(caption)


def test_case_punctuation_and_spacing_are_tolerated():
    assert parse("  A Photo of  a RED circle. ") == parse("a photo of a red circle")


def test_frames_are_split_and_evaluation_prefixes_are_disjoint_from_training_ones():
    train = [f for f in FRAMES if f.split == "train"]
    evaluation = [f for f in FRAMES if f.split == "eval"]
    assert train and evaluation
    for e, t in itertools.product(evaluation, train):
        assert not (t.prefix and e.prefix.startswith(t.prefix)), (e, t)
    assert Phrasing().split == "eval"
