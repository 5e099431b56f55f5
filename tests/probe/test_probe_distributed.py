"""Probe training under torchrun (two CPU processes, gloo) matches one process with the same
global batch: the JVP runs on the bare module and gradients are averaged explicitly."""

import torch
from safetensors.torch import load_file
from tests_shared import run_two_and_one

ARGS = ["train-probe", "--encoder", "class-label", "--size", "tiny", "--budget", "5steps",
        "--batch-size", "8", "--train-size", "64", "--device", "cpu", "--warm-start", "0.4",
        "--no-quick-eval", "--precision", "float32"]  # float32: the comparison is exact


def test_two_processes_match_one_process(tmp_path):
    run_two_and_one(ARGS, tmp_path / "one", tmp_path / "two",
                    {"EMF_BENCH_CACHE": str(tmp_path / "cache")})
    for name in ("model", "ema"):
        a, b = (load_file(str(tmp_path / f"{run}/probes/class-label/meanflow/checkpoints/"
                                         f"step-0000005/{name}.safetensors"))
                for run in ("one", "two"))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
