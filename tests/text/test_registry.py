import importlib.metadata
import sys

import pytest
import torch

from emf_bench.errors import EmfBenchError
from emf_bench.text import registry as registry_module
from emf_bench.text.card import EncoderCard
from emf_bench.text.registry import BACKENDS, EncoderRegistry, backend_class

PAPER_ENCODERS = {"blip3o-next", "clip-vit-l-14", "t5-v1_1-xxl", "gemma-2-2b-it"}
BUILT_INS = {"class-label", "bag-of-words", "random-transformer", "constant", "minilm"}


def test_shipped_cards_cover_the_paper_and_the_built_ins_and_every_backend_imports():
    registry = EncoderRegistry.load()
    assert PAPER_ENCODERS | BUILT_INS | {"open-clip-vit-l-14", "qwen3-1.7b",
                                         "blip3o-next-sft"} <= set(registry.names())
    for name in BACKENDS:
        assert isinstance(backend_class(name), type)  # open_clip itself is imported lazily
    blip = registry.card("blip3o-next")
    assert blip.model == "BLIP3o/BLIP3o-NEXT-GRPO-Geneval-3B"
    assert blip.options["view"] == "image-tokens" and blip.options["image_tokens"] == 729
    assert registry.card("clip-vit-l-14").max_length == 77
    assert not any(registry.card(n).trust_remote_code for n in registry.names())


def test_unknown_encoder_names_the_closest_ones():
    with pytest.raises(EmfBenchError, match="unknown encoder 'blip3o-nxt'; did you mean "
                                            "'blip3o-next'"):
        EncoderRegistry.load().card("blip3o-nxt")


@pytest.mark.parametrize("text, message", [
    ("name: x\nbackend: constant\nlayr: 3\n", r"unknown key in .*bad.yaml: 'layr'; did you mean "
                                              r"'layer'"),
    ("name: x\nbackend: constnt\n", "unknown backend .*did you mean 'constant'"),
    ("backend: constant\n", "missing required field 'name'"),
    ("name: x\nbackend: constant\npooling: max\n", "unknown pooling"),
    ("name: x\nbackend: constant\nlayer: middle\n", "layer 'middle'"),
    ("name: X Y\nbackend: constant\n", "must be lowercase"),
    ("name: x\nbackend: constant\nprompt_template: hello\n", "must contain"),
    ("- just\n- a list\n", "must be a mapping"),
    ("name: [unclosed\n", "cannot read"),
    ("name: x\nbackend: constant\ntrust_remote_code: yes please\n",
     r"trust_remote_code must be a boolean \(true or false\), got 'yes please'"),
    ("name: x\nbackend: constant\ntrust_remote_code: 'true'\n", "must be a boolean"),
    ("name: x\nbackend: constant\nmax_length: ten\n", "max_length must be an integer or null"),
    ("name: x\nbackend: constant\nchat_template: 1\n", "chat_template must be a boolean"),
    ("name: x\nbackend: constant\noptions: [dim]\n", "options must be a mapping"),
    ("name: 7\nbackend: constant\n", "name must be a string"),
])
def test_malformed_cards_are_one_line_naming_the_file(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(EmfBenchError, match=message) as err:
        EncoderRegistry.load([tmp_path])
    assert "\n" not in str(err.value)


def test_user_folders_add_and_replace_cards_and_env_var_works(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text("name: mine\nbackend: bag-of-words\noptions: {dim: 64}\n")
    (tmp_path / "constant.yaml").write_text("name: constant\nbackend: constant\noptions: "
                                            "{dim: 4}\n")
    registry = EncoderRegistry.load([tmp_path])
    assert registry.card("mine").options == {"dim": 64}
    assert registry.card("constant").options == {"dim": 4}
    assert registry.card("constant").source.endswith("constant.yaml")
    (shadow,) = registry.shadowed  # a user card replacing a built-in one says so
    assert "'constant'" in shadow and str(tmp_path) in shadow and "replaces" in shadow
    monkeypatch.setenv("EMF_BENCH_ENCODERS", str(tmp_path))
    assert "mine" in EncoderRegistry.load().names()
    with pytest.raises(EmfBenchError, match="does not exist"):
        EncoderRegistry.load([tmp_path / "nope"])


def test_duplicate_names_in_one_folder_are_rejected(tmp_path):
    (tmp_path / "a.yaml").write_text("name: twin\nbackend: constant\n")
    (tmp_path / "b.yaml").write_text("name: twin\nbackend: constant\n")
    with pytest.raises(EmfBenchError, match="defined twice"):
        EncoderRegistry.load([tmp_path])


def test_entry_points_register_cards_and_backends(tmp_path, monkeypatch):
    (tmp_path / "my_plugin.py").write_text(
        "from emf_bench.text.builtin import ConstantEncoder\n"
        "class Doubled(ConstantEncoder):\n    pass\n"
        "CARD = {'name': 'plugged', 'backend': 'doubled', 'options': {'dim': 3}}\n"
        "def make():\n    return CARD\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = {
        "emf_bench.encoders": [importlib.metadata.EntryPoint("plugged", "my_plugin:make",
                                                             "emf_bench.encoders")],
        "emf_bench.backends": [importlib.metadata.EntryPoint("doubled", "my_plugin:Doubled",
                                                             "emf_bench.backends")],
    }
    monkeypatch.setattr(registry_module, "_entry_points", lambda group: eps.get(group, []))
    registry = EncoderRegistry.load()
    card = registry.card("plugged")
    assert card.source.startswith("entry point plugged")
    encoder = registry_module.load_encoder(card)
    assert type(encoder).__name__ == "Doubled" and encoder.encode(["x"]).pooled.shape == (1, 3)
    sys.modules.pop("my_plugin", None)


def test_fingerprint_covers_feature_fields_only():
    base = EncoderCard(name="e", backend="transformers-llm", model="m")
    same = [base.with_overrides(padding_side="left"), base.with_overrides(notes="hi"),
            base.with_overrides(paper_reference="clip-vit-l-14")]
    different = [base.with_overrides(layer=-2), base.with_overrides(pooling="last"),
                 base.with_overrides(dtype="bfloat16"), base.with_overrides(max_length=16),
                 base.with_overrides(prompt_template="a {prompt}"),
                 base.with_overrides(chat_template=True), base.with_overrides(model="n"),
                 base.with_overrides(revision="abc"), base.with_overrides(options={"x": 1})]
    assert all(c.fingerprint("w") == base.fingerprint("w") for c in same)
    prints = {c.fingerprint("w") for c in different}
    assert len(prints) == len(different) and base.fingerprint("w") not in prints
    assert base.fingerprint("w") != base.fingerprint("other weights")


def test_cuda_under_torchrun_means_this_ranks_gpu(monkeypatch):
    from emf_bench.text.base import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert str(resolve_device("cuda")) == "cuda:3"
    assert str(resolve_device("cuda:1")) == "cuda:1"  # an explicit index stays
    assert str(resolve_device("cpu")) == "cpu"
    monkeypatch.delenv("LOCAL_RANK")
    assert str(resolve_device("cuda")) == "cuda"


def test_a_gpu_that_is_not_there_is_one_line(monkeypatch):
    from emf_bench.text.base import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EmfBenchError, match="sees no CUDA GPU; use --device cpu"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(EmfBenchError, match=r"only 2 CUDA GPU\(s\) are visible"):
        resolve_device("cuda:2")
    assert str(resolve_device("cuda:1")) == "cuda:1"
    with pytest.raises(EmfBenchError, match="unknown device 'gpu'"):
        resolve_device("gpu")


def test_a_layer_is_refused_where_the_backend_has_none():
    from emf_bench.text.registry import load_encoder

    registry = EncoderRegistry.load([])
    card = registry.card("bag-of-words").with_overrides(layer=-2)
    with pytest.raises(EmfBenchError, match="bag-of-words backend has no choice of layer"):
        load_encoder(card)
    assert load_encoder(registry.card("bag-of-words")).card.layer == "last"


@pytest.mark.parametrize("options, message", [
    ({"dim": "big"}, r"options.dim must be an integer, got 'big'"),
    ({"dim": 0}, "options.dim of encoder 'x' must be at least 1"),
    ({"dim": True}, "options.dim must be an integer"),
    ({"dims": 4}, r"unknown option\(s\) \['dims'\] for backend bag-of-words; known: \['dim'\]"),
])
def test_backend_options_are_checked_by_the_backends_schema(options, message):
    card = EncoderCard(name="x", backend="bag-of-words", options=options)
    with pytest.raises(EmfBenchError, match=message):
        backend_class("bag-of-words")(card)


def test_every_backend_declares_the_options_its_shipped_cards_use():
    registry = EncoderRegistry.load()
    for name in registry.names():
        card = registry.card(name)
        backend_class(card.backend).check_card(card)  # no weights loaded
