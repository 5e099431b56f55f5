"""Where the official benchmark files live for conformance tests (never copied into the repo)."""

import os
from pathlib import Path

from emf_bench.study import Profile

SHARED_DATA = Path(os.environ.get("EMF_BENCH_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))


# A study in seconds, for the study's and the report's tests.
TINY = Profile("tiny", "a test profile", probe_encoders=("class-label", "bag-of-words"),
               baselines=("class-label",), budget="3steps", size="tiny", batch_size=8,
               steps=(1, 2), images_per_prompt=1, guidance=1.0, queries=40, pool_size=200,
               train_size=64)



def perturb(model, scale: float = 0.05):
    """Add noise to every parameter: zero-initialised output layers make a fresh probe's output
    (and its derivatives) identically zero, which would make comparisons trivially pass."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def run_two_and_one(args: list[str], one_dir: Path, two_dir: Path, env: dict[str, str],
                    two_env: dict[str, str] | None = None):
    """Run `emf-bench ARGS --run-dir` in one process and under torchrun with two (gloo);
    assert both succeed. `two_env` adds to `env` for the two-process run only (say, its own
    feature cache). Skips when torchrun is not installed."""
    import shutil
    import subprocess
    import sys

    import pytest

    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun not found")
    env = {**os.environ, "EMF_BENCH_QUIET": "1", "OMP_NUM_THREADS": "1", **env}
    one = subprocess.run([sys.executable, "-m", "emf_bench", *args, "--run-dir", str(one_dir)],
                         env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([str(torchrun) if torchrun.exists() else "torchrun", "--standalone",
                          "--nproc_per_node", "2", "-m", "emf_bench", *args, "--run-dir",
                          str(two_dir)], env={**env, **(two_env or {})}, capture_output=True,
                         text=True)
    assert two.returncode == 0, two.stderr[-3000:]


def run_cli(capsys, *args):
    """`emf-bench ARGS` in this process: (exit code, stdout, stderr)."""
    from emf_bench.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
