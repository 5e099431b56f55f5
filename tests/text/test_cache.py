import os
import time

import pytest
import torch

from emf_bench.errors import EmfBenchError
from emf_bench.text.cache import FeatureCache, encode_texts
from emf_bench.text.registry import EncoderRegistry, load_encoder

TEXTS = ["a red circle", "two squares", "a photo of a blue triangle", "a red circle"]


def test_second_call_runs_no_forward_pass_and_returns_identical_features(card_for, cache):
    card = card_for("transformers-t5", "t5")
    first = encode_texts(card, TEXTS, cache, need_tokens=True)
    assert (first.computed, first.cached) == (3, 0)
    encoder = load_encoder(card)
    second = encode_texts(card, TEXTS, cache, need_tokens=True, encoder=encoder)
    assert encoder.calls == 0 and (second.computed, second.cached) == (0, 3)
    assert torch.equal(first.pooled, second.pooled)
    assert torch.equal(first.pooled[0], first.pooled[3])  # duplicates encoded once
    assert all(torch.allclose(a, b) for a, b in zip(first.tokens, second.tokens, strict=True))


def test_changing_layer_or_pooling_never_returns_stale_vectors(card_for, cache):
    card = card_for("transformers-t5", "t5")
    last = encode_texts(card, TEXTS, cache).pooled
    for changed in (card.with_overrides(layer=1), card.with_overrides(pooling="first")):
        got = encode_texts(changed, TEXTS, cache)
        assert got.computed == 3 and not torch.allclose(got.pooled, last)
        fresh = load_encoder(changed).encode(TEXTS).pooled
        assert torch.allclose(got.pooled, fresh, atol=1e-6)
    assert torch.equal(encode_texts(card, TEXTS, cache).pooled, last)


def test_changed_weights_in_a_local_folder_are_a_new_fingerprint(card_for, cache, tiny_models):
    card = card_for("transformers-t5", "t5")
    before = encode_texts(card, TEXTS[:1], cache).fingerprint
    weights = tiny_models["t5"] / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        after = encode_texts(card, TEXTS[:1], cache)
        assert after.fingerprint != before and after.computed == 1
    finally:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_hub_model_fetched_on_first_load_caches_under_its_commit(monkeypatch, cache):
    """Before the first download a Hub model's signature is the revision asked for ("main");
    after loading it is the snapshot's commit. Features go under the commit, where the next
    run (which knows the commit from the start) looks."""
    import emf_bench.text.registry as registry

    card = EncoderRegistry.load().card("bag-of-words")
    loaded = []
    real_load = registry.load_encoder
    monkeypatch.setattr(registry, "weights_signature",
                        lambda c: "hub:x@abc123" if loaded else "hub:x@main")
    monkeypatch.setattr(registry, "load_encoder",
                        lambda *a, **k: loaded.append(1) or real_load(*a, **k))
    first = encode_texts(card, TEXTS[:2], cache)
    assert first.computed == 2 and first.weights == "hub:x@abc123"
    second = encode_texts(card, TEXTS, cache)  # the commit known from the start now
    assert (second.computed, second.cached) == (1, 2) and len(loaded) == 2
    assert second.fingerprint == first.fingerprint
    assert torch.equal(second.pooled[:2], first.pooled)


def test_tokens_are_computed_when_first_only_pooled_was_cached(card_for, cache):
    card = card_for("transformers-clip", "clip")
    encode_texts(card, TEXTS, cache)
    got = encode_texts(card, TEXTS, cache, need_tokens=True)
    assert got.computed == 3 and [t.shape[0] for t in got.tokens[:2]] == [3, 2]
    assert encode_texts(card, TEXTS, cache, need_tokens=True).computed == 0


class Crashing:
    """Wraps an encoder; raises after `after` batches, like a run killed midway."""

    def __init__(self, inner, after):
        self.inner, self.after, self.batch_size = inner, after, inner.batch_size

    def encode_batches(self, texts):
        for n, item in enumerate(self.inner.encode_batches(texts)):
            if n == self.after:
                raise KeyboardInterrupt
            yield item


def test_an_interrupted_encoding_keeps_what_was_flushed(cache):
    card = EncoderRegistry.load().card("bag-of-words")
    texts = [f"a red circle {'and a square ' * i}" for i in range(40)]
    encoder = load_encoder(card, batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        encode_texts(card, texts, cache, encoder=Crashing(encoder, after=6), flush_every=8)
    resumed = encode_texts(card, texts, cache)
    assert resumed.cached == 24 and resumed.computed == 16  # 3 flushes of 8 texts survived
    assert torch.allclose(resumed.pooled, load_encoder(card).encode(texts).pooled)


def test_unreadable_shards_are_skipped_not_trusted(cache):
    card = EncoderRegistry.load().card("constant")
    encode_texts(card, TEXTS, cache)
    (folder,) = cache.root.iterdir()
    (folder / f"shard-{time.time_ns()}-bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="skipping unreadable feature shard"):
        again = encode_texts(card, TEXTS, cache)
    assert again.computed == 0


def test_without_a_cache_features_are_still_right(card_for):
    card = card_for("transformers-llm", "qwen3")
    got = encode_texts(card, TEXTS, None, need_tokens=True)
    assert got.computed == 3 and got.pooled.shape == (4, 32) and len(got.tokens) == 4


def test_the_cache_folder_records_what_it_holds(cache):
    card = EncoderRegistry.load().card("bag-of-words")
    encode_texts(card, TEXTS, cache)
    (folder,) = cache.root.iterdir()
    assert folder.name.startswith("bag-of-words-")
    import json

    described = json.loads((folder / "card.json").read_text())
    assert described["feature_fields"]["options"] == {"dim": 1024}


def test_empty_input_is_an_error(cache):
    with pytest.raises(EmfBenchError, match="empty text list"):
        encode_texts(EncoderRegistry.load().card("constant"), [], cache)


def test_default_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EMF_BENCH_CACHE", str(tmp_path / "c"))
    assert FeatureCache().root == tmp_path / "c"
