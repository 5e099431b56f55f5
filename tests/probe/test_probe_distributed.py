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


def test_a_latent_data_probe_under_two_processes_matches_one(tmp_path, world_folder, tiny_vaes):
    """--data in an autoencoder's latents: the two ranks split the images to encode (each run
    its own cache), rank 0 writes them, and the probe matches one process's."""
    args = ["train-probe", "--encoder", "bag-of-words", "--size", "cpu-latent", "--budget",
            "3steps", "--batch-size", "8", "--device", "cpu", "--no-quick-eval", "--precision",
            "float32", "--data", str(world_folder), "--resolution", "16", "--vae",
            str(tiny_vaes["kl"])]
    run_two_and_one(args, tmp_path / "one", tmp_path / "two",
                    {"EMF_BENCH_CACHE": str(tmp_path / "cache-one")},
                    {"EMF_BENCH_CACHE": str(tmp_path / "cache-two")})
    shards = list((tmp_path / "cache-two").glob("_images/latents-*/shard-*.safetensors"))
    assert len(shards) == 1 and len(load_file(str(shards[0]))["arrays"]) == 64
    for name in ("model", "ema"):
        a, b = (load_file(str(tmp_path / f"{run}/probes/bag-of-words/meanflow/checkpoints/"
                                         f"step-0000003/{name}.safetensors"))
                for run in ("one", "two"))
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
