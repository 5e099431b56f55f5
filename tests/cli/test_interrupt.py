"""A scheduler's SIGTERM ends a command like Ctrl-C: exit 130, the manifest says interrupted,
finished checkpoints stay, and the same command resumes."""

import json
import os
import signal
import subprocess
import sys
import time


def test_sigterm_interrupts_and_the_same_command_resumes(tmp_path):
    args = [sys.executable, "-m", "emf_bench", "train-probe", "--encoder", "class-label",
            "--size", "tiny", "--budget", "100000steps", "--batch-size", "4", "--train-size",
            "32", "--checkpoint-every", "2", "--device", "cpu", "--no-quick-eval", "--run-dir",
            str(tmp_path)]
    env = {**os.environ, "EMF_BENCH_QUIET": "1", "EMF_BENCH_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    latest = tmp_path / "probes/class-label/meanflow/latest.json"
    deadline = time.monotonic() + 300
    while not latest.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["invocations"][-1]["status"] == "interrupted"
    step = json.loads(latest.read_text())["step"]
    assert step >= 2
    resumed = subprocess.run([*args[:8], "--budget", f"{step + 2}steps", *args[10:],
                              "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(latest.read_text())["step"] == step + 2
