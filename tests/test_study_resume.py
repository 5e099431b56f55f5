"""A study killed (SIGKILL, nothing flushed) in the middle of a probe resumes, with the same
command, to the same steps, the same final checkpoint and the same evaluation as a study that
was never interrupted: the step budget and the seeds decide the numbers, not the interruption."""

import json
import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

STUDY = """
import sys
from pathlib import Path
from emf_bench.study import Profile, Study
from emf_bench.world import WorldConfig

profile = Profile("tiny", "a test profile", probe_encoders=("class-label",), baselines=(),
                  budget="500steps", size="tiny", batch_size=8, steps=(1,),
                  images_per_prompt=1, queries=40, pool_size=200, train_size=64)
study = Study(profile, Path(sys.argv[1]), WorldConfig().to_dict(), device="cpu",
              cache_dir=Path(sys.argv[2]), threads=1)
study.encoders = lambda: (["class-label"], ["class-label"])
study.run()
"""


def run_study(run, cache, **popen):
    env = {**os.environ, "EMF_BENCH_QUIET": "1"}
    return subprocess.Popen([sys.executable, "-c", STUDY, str(run), str(cache)], env=env,
                            stderr=subprocess.PIPE, text=True, **popen)


def test_a_study_killed_mid_probe_resumes_to_the_uninterrupted_result(tmp_path):
    # one thread each, side by side: the uninterrupted study and the one to be killed
    whole = run_study(tmp_path / "whole", tmp_path / "cache-whole")
    killed_run = tmp_path / "killed"
    latest = killed_run / "probes/class-label/meanflow/latest.json"
    killed = run_study(killed_run, tmp_path / "cache")
    deadline = time.monotonic() + 300
    while not latest.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    step = json.loads(latest.read_text())["step"]
    assert 0 < step < 500 and not (killed_run / "probes/class-label/meanflow/probe.json").exists()

    assert whole.wait(timeout=600) == 0, whole.stderr.read()
    resumed = run_study(killed_run, tmp_path / "cache")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()

    final = "probes/class-label/meanflow/checkpoints/step-0000500"
    for name in ("model", "ema"):
        a = load_file(str(tmp_path / "whole" / final / f"{name}.safetensors"))
        b = load_file(str(killed_run / final / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    summaries = [json.loads(next((r / "evals").glob("*/world-geneval/steps-1/summary.json"))
                            .read_text()) for r in (tmp_path / "whole", killed_run)]
    assert summaries[0]["overall"] == summaries[1]["overall"]
    assert summaries[0]["tasks"] == summaries[1]["tasks"]
