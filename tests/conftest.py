from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests_shared import SHARED_DATA, TINY  # official files beside the project: tests skip without
from tokenizers import Tokenizer, models, pre_tokenizers

from emf_bench.text.card import EncoderCard


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow (.ci/run does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    monkeypatch.setenv("EMF_BENCH_QUIET", "1")
    # Tests never touch the user's feature cache, nor the network.
    monkeypatch.setenv("EMF_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "feature-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    _test_environment(monkeypatch, tmp_path_factory)


@pytest.fixture(scope="session")
def geneval_metadata_file() -> Path:
    path = SHARED_DATA / "geneval" / "evaluation_metadata.jsonl"
    if not path.exists():
        pytest.skip(f"official GenEval metadata not found at {path}")
    return path


# --- tiny random models, built offline and saved with save_pretrained -------------------------
# They load through the same code path a real checkpoint uses (a local folder instead of a Hub
# id). Scores on them mean nothing; shapes, masks, layers, padding and loading are what count.

WORDS = ("a an the photo of image picture red green blue yellow circle circles square squares "
         "triangle triangles left right above below is and with two three four one this "
         "shows there are on gray background to side that in colored , .").split()
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|system|>", "<|assistant|>"]
BLIP3O_TOKENS = ["<im_start>", "<im_end>", "<S0>"] + [f"<IMG_{i}>" for i in range(24)]
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|> {% endif %}")


def save_tokenizer(path: Path, extra: list[str] = (), chat: bool = False):
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(dict.fromkeys(SPECIAL + list(WORDS) + list(extra)))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
        eos_token="</s>", additional_special_tokens=list(extra))
    if chat:
        tokenizer.chat_template = CHAT
    tokenizer.save_pretrained(path)
    return len(vocab)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    import transformers as tf

    root = tmp_path_factory.mktemp("tiny-models")
    paths = {name: root / name for name in ("clip", "t5", "qwen3", "blip3o", "dinov2",
                                            "clip-vision")}
    torch.manual_seed(0)

    vocab = save_tokenizer(paths["clip"])
    tf.CLIPTextModel(tf.CLIPTextConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, pad_token_id=0, bos_token_id=2,
        eos_token_id=3)).save_pretrained(paths["clip"])

    vocab = save_tokenizer(paths["t5"])
    tf.T5EncoderModel(tf.T5Config(
        vocab_size=vocab, d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2,
        pad_token_id=0, eos_token_id=3, decoder_start_token_id=0)).save_pretrained(paths["t5"])

    qwen = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                max_position_embeddings=512, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    vocab = save_tokenizer(paths["qwen3"], chat=True)
    tf.Qwen3Model(tf.Qwen3Config(vocab_size=vocab, **qwen)).save_pretrained(paths["qwen3"])

    # BLIP3o-NEXT: a Qwen3 causal LM with image tokens, saved under the custom model type the
    # real checkpoints carry, which transformers does not know.
    vocab = save_tokenizer(paths["blip3o"], extra=BLIP3O_TOKENS, chat=True)
    model = tf.Qwen3ForCausalLM(tf.Qwen3Config(vocab_size=vocab, **qwen))
    model.generation_config.eos_token_id = None  # generate the full number of image tokens
    model.save_pretrained(paths["blip3o"])
    config_file = paths["blip3o"] / "config.json"
    config = json.loads(config_file.read_text())
    config.update(model_type="blip3o_qwen_inference", architectures=["blip3oQwenForInferenceLM"])
    config_file.write_text(json.dumps(config))

    tf.Dinov2Model(tf.Dinov2Config(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64)).save_pretrained(paths["dinov2"])
    tf.BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
                         ).save_pretrained(paths["dinov2"])
    tf.CLIPVisionModelWithProjection(tf.CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, projection_dim=16)).save_pretrained(paths["clip-vision"])
    tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
                          ).save_pretrained(paths["clip-vision"])
    return paths


@pytest.fixture
def card_for(tiny_models):
    def make(backend: str, model: str, **fields) -> EncoderCard:
        return EncoderCard(name=f"tiny-{model}", backend=backend, model=str(tiny_models[model]),
                           **fields)
    return make


@pytest.fixture
def cache(tmp_path):
    from emf_bench.text.cache import FeatureCache

    return FeatureCache(tmp_path / "feature-cache")


@pytest.fixture(scope="session")
def tiny_backends(tmp_path_factory):
    """A tiny Mask2Former (COCO labels), CLIP (colours) and ViLT (VQA), random weights."""
    import transformers as tf

    from emf_bench.evaluation.detectors import COCO_CLASSES
    from emf_bench.evaluation.geneval import COLORS

    root = tmp_path_factory.mktemp("tiny-backends")
    torch.manual_seed(0)
    paths = {}

    paths["mask2former"] = root / "mask2former"
    backbone = tf.SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1],
                             num_heads=[1, 1, 1, 1], window_size=2,
                             out_features=["stage1", "stage2", "stage3", "stage4"])
    config = tf.Mask2FormerConfig(
        backbone_config=backbone, num_queries=6, hidden_dim=32, mask_feature_size=32,
        feature_size=32, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
        encoder_feedforward_dim=32, dim_feedforward=32,
        id2label=dict(enumerate(COCO_CLASSES)), label2id={c: i for i, c in
                                                          enumerate(COCO_CLASSES)})
    tf.Mask2FormerForUniversalSegmentation(config).save_pretrained(paths["mask2former"])
    tf.Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 64},
                                 size_divisor=32).save_pretrained(paths["mask2former"])

    paths["clip"] = root / "clip"
    vocab = save_tokenizer(paths["clip"], extra=[*COLORS, "object", "colored", "car", "-"])
    tf.CLIPModel(tf.CLIPConfig(
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=1, num_attention_heads=2),
        projection_dim=16)).save_pretrained(paths["clip"])
    tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
                          ).save_pretrained(paths["clip"])

    paths["vilt"] = root / "vilt"
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "is", "there", "a", "red", "circle",
             "?"]
    wordpiece = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)},
                                           unk_token="[UNK]"))
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer = tf.BertTokenizerFast(tokenizer_object=wordpiece, pad_token="[PAD]",
                                     unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                     mask_token="[MASK]")
    tf.ViltProcessor(tf.ViltImageProcessor(size={"shortest_edge": 32}, size_divisor=32),
                     tokenizer).save_pretrained(paths["vilt"])
    tf.ViltForQuestionAnswering(tf.ViltConfig(
        vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, image_size=32, patch_size=8, max_position_embeddings=40,
        id2label={0: "yes", 1: "no"}, label2id={"yes": 0, "no": 1})).save_pretrained(
        paths["vilt"])
    return paths


# --- a tiny study, run once for the study's and the report's tests --------------------------

@pytest.fixture(scope="session")
def study_run(tmp_path_factory):
    """A finished tiny study: (run folder, Study). Built before any test's own environment, so
    it sets the same one (quiet, offline, the tests' feature cache)."""
    from emf_bench.rundir import RunDir
    from emf_bench.study import Study
    from emf_bench.world import WorldConfig

    run = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp:
        _test_environment(mp, tmp_path_factory)
        study = Study(TINY, run, WorldConfig().to_dict(), device="cpu", jobs=1, threads=1)
        study.encoders = lambda: (["class-label", "bag-of-words", "constant"],
                                  ["class-label", "bag-of-words"])
        with RunDir.open(run).invocation("run", {"profile": "tiny"}, 0):
            result = study.run()
    assert result["probes"] == ["class-label/meanflow", "bag-of-words/meanflow",
                                "class-label/flow-matching"]
    return run, study


# --- the world's suites exported with ground truth, in the official layouts ----------------

@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Path:
    """world-GenEval (2 images a prompt) and world-DPG ground truth: read-only, copy to edit."""
    from emf_bench.evaluation.world_export import export_world_suites
    from emf_bench.storage import atomic_directory
    from emf_bench.world import World

    out = tmp_path_factory.mktemp("export") / "suites"
    with atomic_directory(out) as tmp:
        export_world_suites(World(), tmp, images_per_prompt=2)
    return out
