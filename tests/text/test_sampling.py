"""Batched sampling for BLIP3o-NEXT's image-token view: a caption draws the same tokens alone and
inside a left-padded batch, the warping matches transformers' own processors, and features do
not depend on the batch."""

from __future__ import annotations

import pytest
import torch

from emf_bench.text.registry import load_encoder
from emf_bench.text.sampling import draw, sample_batch, warp

TEXTS = ["a red circle", "two blue squares left of a green triangle and a yellow circle",
         "a photo of a square", "three circles"]


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 1200, 0.95), (0.7, 5, 1.0),
                                                        (1.3, 50, 0.5), (1.0, 1, 0.9)])
def test_warping_matches_transformers_processors(temperature, top_k, top_p):
    from transformers import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    logits = torch.randn(3, 97, generator=torch.Generator().manual_seed(0)) * 3
    theirs = logits.clone()
    for processor in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(min(top_k, 97)),
                      TopPLogitsWarper(top_p)):
        theirs = processor(None, theirs)
    torch.testing.assert_close(warp(logits, temperature, top_k, top_p), theirs.softmax(-1))


def test_a_draw_follows_the_distribution_and_only_its_own_generator():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5]] * 2)
    picks = [draw(probs[:1], [torch.Generator().manual_seed(s)]).item() for s in range(400)]
    assert set(picks) == {1, 3} and 150 < picks.count(1) < 250
    alone = draw(probs[:1], [torch.Generator().manual_seed(7)])
    together = draw(probs, [torch.Generator().manual_seed(99), torch.Generator().manual_seed(7)])
    assert together[1] == alone[0]


def test_a_caption_samples_the_same_tokens_alone_and_in_a_padded_batch(card_for):
    encoder = load_encoder(card_for("blip3o-next", "blip3o", options={"image_tokens": 12}))
    tokenizer, model = encoder.tokenizer, encoder.model

    def sample(texts, seeds):
        ids = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                        add_special_tokens=False)
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        sequences, mask = sample_batch(model, ids["input_ids"], ids["attention_mask"], gens, 12,
                                       1.0, 1200, 0.95)
        assert mask[:, -12:].all()
        return sequences[:, -12:]

    batch = sample(TEXTS, [1, 2, 3, 4])
    assert batch.shape == (4, 12)
    for row, text in enumerate(TEXTS):
        assert torch.equal(sample([text], [row + 1])[0], batch[row]), text
    assert not torch.equal(sample([TEXTS[0]], [5])[0], batch[0])  # another seed, other tokens


def test_image_token_features_do_not_depend_on_the_batch(card_for):
    card = card_for("blip3o-next", "blip3o", options={"image_tokens": 6, "seed": 3})
    batched = load_encoder(card, batch_size=4).encode(TEXTS)
    single = load_encoder(card, batch_size=1).encode(TEXTS)
    assert batched.tokens.shape == (4, 7, 32) and batched.mask.all()
    torch.testing.assert_close(batched.tokens, single.tokens, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batched.pooled, single.pooled, atol=1e-4, rtol=1e-4)


def test_the_image_token_view_fingerprints_its_sampler(card_for):
    from emf_bench.text.registry import weights_signature

    image = card_for("blip3o-next", "blip3o")
    prompt = card_for("blip3o-next", "blip3o", options={"view": "prompt"})
    assert weights_signature(image).endswith("|sampler:batched-1")
    assert "sampler" not in weights_signature(prompt)


def test_a_card_sets_the_batch_size_without_changing_the_features_key(card_for):
    plain = card_for("blip3o-next", "blip3o", options={"image_tokens": 4})
    batched = card_for("blip3o-next", "blip3o", options={"image_tokens": 4, "batch_size": 3})
    assert load_encoder(batched, batch_size=32).batch_size == 3
    assert plain.fingerprint("w") == batched.fingerprint("w")


def test_encoding_says_its_cost_caches_every_batch_and_survives_running_out_of_memory(
        card_for, cache, monkeypatch, capsys):
    from emf_bench.errors import EmfBenchError
    from emf_bench.text.blip3o import Blip3oNextEncoder
    from emf_bench.text.cache import encode_texts

    monkeypatch.delenv("EMF_BENCH_QUIET", raising=False)
    card = card_for("blip3o-next", "blip3o", options={"image_tokens": 4, "batch_size": 1})
    texts = [f"{n} red circles" for n in ("one", "two", "three", "four", "five")]
    real = Blip3oNextEncoder._image_token_states
    calls = []

    def third_batch_runs_out(self, batch):
        calls.append(batch)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(self, batch)

    monkeypatch.setattr(Blip3oNextEncoder, "_image_token_states", third_batch_runs_out)
    with pytest.raises(EmfBenchError, match=r"a batch of 1 texts does not fit.*--batch-size"):
        encode_texts(card, texts, cache)
    err = capsys.readouterr().err
    assert "5 text(s) to encode, 0 already in the feature cache" in err
    assert "min for the rest" in err and "texts/s on the first batch" in err
    monkeypatch.setattr(Blip3oNextEncoder, "_image_token_states", real)
    again = encode_texts(card, texts, cache)  # the two finished batches were kept
    assert again.cached == 2 and again.computed == 3


def test_a_killed_image_token_encoding_resumes_from_its_finished_batches(tiny_models, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "tiny-blip.yaml").write_text(
        f"name: tiny-blip\nbackend: blip3o-next\nmodel: {tiny_models['blip3o']}\n"
        f"options:\n  image_tokens: 48\n  batch_size: 2\n")
    env = {**os.environ, "EMF_BENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("EMF_BENCH_QUIET", None)
    args = [sys.executable, "-m", "emf_bench", "encoders", "score", "-e", "tiny-blip",
            "--encoders-dir", str(cards), "--metrics", "disentanglement", "--device", "cpu",
            "--run-dir", str(tmp_path / "run")]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    shards = []
    deadline = time.monotonic() + 300
    while len(shards) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        shards = list((tmp_path / "cache").glob("tiny-blip-*/shard-*.safetensors"))
    assert process.poll() is None, "finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    again = subprocess.run(args, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    line = next(x for x in again.stderr.splitlines() if "already in the feature cache" in x)
    assert int(line.split(", ")[1].split()[0]) >= 4  # two batches of two at least
