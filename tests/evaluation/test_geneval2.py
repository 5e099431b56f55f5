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


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    """A chat VLM built from configs (tiny CLIP vision tower + tiny Llama, Llava wiring) with a
    word-level tokenizer and a chat template: the whole path on CPU, no download."""
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    root = tmp_path_factory.mktemp("tiny-vlm")
    words = ("<pad> <unk> <s> </s> <image> <|user|> <|assistant|> yes Yes no one two three four "
             "4 is there a cat dog in the image ? answer word . how many cats are does this "
             "show with or no No").split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Punctuation()])
    tokenizer = tf.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
        eos_token="</s>", additional_special_tokens=["<image>", "<|user|>", "<|assistant|>"])
    template = ("{% for m in messages %}<|{{ m['role'] }}|> {% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}"
                "{% endfor %}{% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}")
    processor = tf.LlavaProcessor(
        image_processor=tf.CLIPImageProcessor(size={"shortest_edge": 16},
                                              crop_size={"height": 16, "width": 16}),
        tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=template)
    config = tf.LlavaConfig(
        vision_config=tf.CLIPVisionConfig(image_size=16, patch_size=8, hidden_size=16,
                                          intermediate_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, projection_dim=16),
        text_config=tf.LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=1, num_attention_heads=2,
                                   num_key_value_heads=1, max_position_embeddings=256,
                                   pad_token_id=0),
        image_token_index=vocab["<image>"])
    tf.LlavaForConditionalGeneration(config).save_pretrained(root)
    processor.save_pretrained(root)
    return root


def test_a_tiny_chat_vlm_answers_with_probabilities(tiny_vlm):
    import numpy as np

    from emf_bench.evaluation.vlm import ChatVLM

    vlm = ChatVLM(str(tiny_vlm), device="cpu", dtype="float32", batch_size=2)
    image = np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    questions = ["Is there a cat in the image?", "How many cats are in the image?",
                 "Is there a dog in the image?"]
    soft, hard = vlm.answer(image, questions, ["Yes", "four", "Yes"])
    assert len(soft) == 3 and all(0 < p < 1 for p in soft) and len(hard) == 3
    probs = vlm.next_token_probs(image, [q + g2.QUESTION_SUFFIX for q in questions])
    torch = pytest.importorskip("torch")
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))
    alone = vlm.next_token_probs(image, [questions[1] + g2.QUESTION_SUFFIX])
    torch.testing.assert_close(alone[0], probs[1], atol=1e-5, rtol=1e-4)  # batch-independent
    first = vlm.first_token
    expected = sum(float(probs[0, t]) for t in dict.fromkeys(
        first(s) for s in g2.spellings(questions[0], "Yes")))
    assert soft[0] == pytest.approx(expected)
    assert 0 < vlm.vqascore(image, "a cat") < 1
    assert vlm.describe()["official"] is False


def test_what_is_not_a_chat_vlm_is_one_line(tmp_path, tiny_models):
    from emf_bench.evaluation.vlm import ChatVLM

    with pytest.raises(EmfBenchError, match="does not exist"):
        ChatVLM(str(tmp_path / "nope"))
    with pytest.raises(EmfBenchError, match="cannot load VLM") as err:
        ChatVLM(str(tiny_models["qwen3"]))  # a text-only model
    assert "\n" not in str(err.value)


def test_eval_geneval2_on_a_probe_with_a_tiny_vlm(official, tiny_vlm, tmp_path, capsys):
    from tests_shared import run_cli

    code, _, err = run_cli(capsys, "train-probe", "--encoder", "bag-of-words", "--size", "tiny",
                           "--budget", "2steps", "--train-size", "64", "--batch-size", "8",
                           "--device", "cpu", "--no-quick-eval", "--run-dir", tmp_path)
    assert code == 0, err
    code, out, err = run_cli(capsys, "eval", "--model", "probe:bag-of-words", "--benchmark",
                             "geneval2", "--geneval2-data", DATA, "--limit", "3", "--steps",
                             "1,2", "--images-per-prompt", "1", "--vqa", f"vlm:{tiny_vlm}",
                             "--device", "cpu", "--run-dir", tmp_path)
    assert code == 0, err
    assert "Soft-TIFA GM" in " ".join(out.split()) and "NOT the official" in " ".join(out.split())
    folder = next(tmp_path.glob("evals/*/geneval2.first3/steps-1"))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["prompts"] == 3 and summary["of"] == 800 and summary["compat"] == "corrected"
    assert summary["subset"]["limit"] == 3 and 0 <= summary["soft_tifa_gm"] <= 100
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert [len(r["soft"]) for r in rows] == [len(official[i].questions) for i in range(3)]
    am = sum(sum(r["soft"]) / len(r["soft"]) for r in rows) / 3 * 100
    assert summary["soft_tifa_am"] == pytest.approx(am)  # recomputable from the rows
    image_map = json.loads((folder / "images" / "image_map.json").read_text())
    assert set(image_map) == {official[i].prompt for i in range(3)}
    code, _, err = run_cli(capsys, "eval", "--model", "probe:bag-of-words", "--benchmark",
                           "geneval2", "--limit", "3", "--run-dir", tmp_path)
    assert code == 2 and "needs --geneval2-data" in err
    code, _, err = run_cli(capsys, "eval", "--model", "probe:bag-of-words", "--benchmark",
                           "geneval2", "--geneval2-data", DATA, "--tags", "count", "--run-dir",
                           tmp_path)
    assert code == 2 and "use --limit" in err


def test_the_official_image_map_is_read_and_a_partial_one_refused(official, tiny_vlm, tmp_path,
                                                                  capsys):
    import numpy as np
    from PIL import Image
    from tests_shared import run_cli

    folder = tmp_path / "mine"
    (folder / "pics").mkdir(parents=True)
    mapping = {}
    for i in range(3):
        path = folder / "pics" / f"{i}.png"
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(path)
        mapping[official[i].prompt] = str(path) if i == 2 else f"pics/{i}.png"
    (folder / "image_map.json").write_text(json.dumps(mapping))
    args = ["eval", "--images", folder, "--benchmark", "geneval2", "--geneval2-data", DATA,
            "--vqa", f"vlm:{tiny_vlm}", "--device", "cpu", "--run-dir", tmp_path / "run"]
    code, _, err = run_cli(capsys, *args, "--limit", "3")
    assert code == 0, err
    summary = json.loads(next((tmp_path / "run").glob(
        "evals/*/geneval2.first3/steps-0/summary.json")).read_text())
    assert summary["images"] == 3 and summary["errors"] == 0
    code, _, err = run_cli(capsys, *args, "--limit", "4")
    assert code == 2 and "lacks 1 of 4 prompts" in err and official[3].prompt in err


def test_the_chat_vlm_answers_dpg_bench_labelled_not_official(tiny_vlm, exported, tmp_path,
                                                              capsys):
    import numpy as np
    from tests_shared import run_cli

    from emf_bench.evaluation.vqa import VLMYesNo, load_vqa

    vqa = load_vqa(f"vlm:{tiny_vlm}", device="cpu")
    assert isinstance(vqa, VLMYesNo) and not vqa.official and not vqa.describe()["official"]
    image = np.random.default_rng(1).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    questions = ["Is there a cat in the image?", "Is there a dog in the image?"]
    p = vqa.yes_probability(image, questions)
    probs = vqa.vlm.next_token_probs(image, [q + VLMYesNo.SUFFIX for q in questions])
    first = vqa.vlm.first_token
    for row, value in zip(probs, p, strict=True):  # the yes share of yes + no, tokens once
        yes = sum(float(row[t]) for t in {first(s) for s in VLMYesNo.YES})
        no = sum(float(row[t]) for t in {first(s) for s in VLMYesNo.NO})
        assert value == pytest.approx(yes / (yes + no), rel=1e-5)
    assert vqa.answer(image, questions) == ["yes" if v > 0.5 else "no" for v in p]
    code, out, err = run_cli(capsys, "eval", "--images", exported / "dpg/images", "--benchmark",
                             "world-dpg", "--vqa", f"vlm:{tiny_vlm}", "--limit", "2",
                             "--device", "cpu", "--run-dir", tmp_path)
    assert code == 0, err
    assert "NOT the official" in " ".join(out.split())
    summary = json.loads(next(tmp_path.glob("evals/*/world-dpg.first2/steps-0/summary.json"))
                         .read_text())
    assert summary["scorer"]["vqa"]["name"] == f"vlm:{tiny_vlm}"
    assert summary["scorer"]["official"] is False
