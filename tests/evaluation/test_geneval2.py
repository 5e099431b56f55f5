"""GenEval 2's rules: the official data file, answer spellings, the official token rule on a
tiny byte-level tokenizer built offline, and Soft-TIFA / TIFA / VQAScore from fixed
probabilities against the official formulas."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
from tests_shared import SHARED_DATA

from emf_bench.errors import EmfBenchError
from emf_bench.evaluation import geneval2 as g2

DATA = SHARED_DATA / "geneval2" / "geneval2_data.jsonl"


@pytest.fixture(scope="module")
def official():
    if not DATA.exists():
        pytest.skip(f"official GenEval 2 data not found at {DATA}")
    return g2.read_data(DATA)


def test_the_official_file_parses_to_its_published_counts(official):
    assert len(official) == 800
    assert sum(len(it.questions) for it in official) == 6012
    assert Counter(it.atom_count for it in official) == {k: 100 for k in range(3, 11)}
    assert Counter(s for it in official for s in it.skills) == {
        "object": 2025, "count": 2025, "attribute": 1214, "position": 662, "verb": 86}


def test_spellings_follow_the_official_lists():
    assert g2.spellings("Is the cat black?", "Yes") == ["Yes", "yes", " yes", " Yes"]
    assert g2.spellings("How many cats are in the image?", "four") == [
        "four", " four", "Four", " Four", "4", " 4"]
    assert g2.spellings("How many cats are in the image?", "twelve") == [
        "other", " other", "Other", " Other"]


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE that knows " four" and " yes" but not " 4": " 4" splits into a space
    token and "4", as the official rule's quirk needs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["yes Yes four Four", "a yes a Yes a four a Four", "4"] * 50
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=1))
    return tok


def test_the_official_token_rule_and_the_corrected_one(tokenizer):
    def first(text):
        return tokenizer.encode(text).ids[0]

    space = tokenizer.token_to_id("Ġ")
    assert tokenizer.encode(" 4").tokens == ["Ġ", "4"]  # the quirk's precondition
    accepted = g2.spellings("How many cats are in the image?", "four")
    starting_with_space = sum(first(s) == space for s in accepted)
    assert starting_with_space >= 1
    probs = {i: 0.0 for i in range(tokenizer.get_vocab_size())}
    probs[space] = 0.5
    # official: once per spelling whose first token is the space; corrected: once
    assert g2.answer_probability(probs, first, accepted, "official") == pytest.approx(
        0.5 * starting_with_space)
    assert g2.answer_probability(probs, first, accepted) == pytest.approx(0.5)
    probs[space], probs[first("four")], probs[first(" four")] = 0.0, 0.2, 0.3
    assert g2.answer_probability(probs, first, accepted) == pytest.approx(0.5)
    assert g2.is_accepted(first(" four"), first, accepted)
    assert not g2.is_accepted(first(" yes"), first, accepted)
    with pytest.raises(EmfBenchError, match="unknown GenEval 2 compat mode"):
        g2.answer_probability(probs, first, accepted, "strict")


def _official_scores(items, soft, hard, vqa):
    """The official script's aggregation, written out: AM and GM per prompt, x 100."""
    am = [sum(soft[i.index]) / len(soft[i.index]) for i in items]
    gm = [math.prod(soft[i.index]) ** (1 / len(soft[i.index])) for i in items]
    tifa = [sum(hard[i.index]) / len(hard[i.index]) for i in items]
    return (100 * sum(am) / len(am), 100 * sum(gm) / len(gm), 100 * sum(tifa) / len(tifa),
            100 * sum(vqa[i.index] for i in items) / len(items))


def test_scores_from_fixed_probabilities_equal_the_official_formulas(official):
    import random

    rng = random.Random(0)
    soft = {it.index: [rng.uniform(0.01, 1) for _ in it.questions] for it in official}
    hard = {i: [p > 0.5 for p in v] for i, v in soft.items()}
    vqa = {it.index: rng.random() for it in official}
    got = g2.summarize(official, soft, hard, vqa)
    am, gm, tifa, vqascore = _official_scores(official, soft, hard, vqa)
    assert got["soft_tifa_am"] == pytest.approx(am, abs=1e-9)
    assert got["soft_tifa_gm"] == pytest.approx(gm, abs=1e-9)
    assert got["tifa"] == pytest.approx(tifa, abs=1e-9)
    assert got["vqascore"] == pytest.approx(vqascore, abs=1e-9)
    skill = [p for it in official
             for s, p in zip(it.skills, soft[it.index], strict=True) if s == "verb"]
    assert got["skills"]["verb"] == pytest.approx(100 * sum(skill) / len(skill))
    assert set(got["atomicity"]) == {str(k) for k in range(3, 11)}
    assert got["prompts"] == got["of"] == 800 and got["missing"] == []
    part = g2.summarize(official, {i: soft[i] for i in range(10)})
    assert part["prompts"] == 10 and part["of"] == 800 and part["missing"][:2] == [10, 11]
    assert g2.soft_tifa([1.0, 0.0]) == (0.5, 0.0)


@pytest.mark.parametrize("row, message", [
    ({"prompt": "x", "atom_count": 3, "vqa_list": [["q?", "Yes"]]}, "no 'skills' field"),
    ({"prompt": "x", "atom_count": 3, "vqa_list": [["q?", "Yes"]], "skills": []},
     "one length"),
    ({"prompt": "x", "atom_count": 3, "vqa_list": [["q?", "Yes"]], "skills": ["colour"]},
     "unknown skill 'colour'"),
    ({"prompt": "x", "atom_count": "3", "vqa_list": [["q?", "Yes"]], "skills": ["object"]},
     "atom_count must be a whole number"),
    ({"prompt": "x", "atom_count": 3, "vqa_list": [["q?"]], "skills": ["object"]},
     r"\[question, answer\] pairs"),
])
def test_bad_data_files_name_the_line(tmp_path, row, message):
    good = {"prompt": "a cat", "atom_count": 3, "vqa_list": [["Is there a cat?", "Yes"]],
            "skills": ["object"]}
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(EmfBenchError, match=message) as err:
        g2.read_data(path)
    assert "line 2" in str(err.value)
