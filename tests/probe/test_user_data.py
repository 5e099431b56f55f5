"""Probes on a user's images (`train-probe --data`): the world exported as an imagefolder trains
the very probe the world trains; the latent path (encode, cache, train, sample, decode,
evaluate) runs on tiny autoencoders built from configs; resume, presets and bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from tests_shared import run_cli as run

from emf_bench.errors import EmfBenchError

pytest.importorskip("diffusers")

TINY = ["--train-size", "64", "--batch-size", "8", "--device", "cpu", "--precision", "float32",
        "--encoder", "bag-of-words", "--no-quick-eval"]


def weights(run_dir, step, encoder="bag-of-words"):
    folder = run_dir / f"probes/{encoder}/meanflow/checkpoints/step-{step:07d}"
    return {name: load_file(str(folder / f"{name}.safetensors"))
            for name in ("model", "ema", "conditioning")}


def test_the_world_as_an_imagefolder_trains_the_world_probe(capsys, tmp_path, world_folder):
    """Same scenes, captions, order, steps and seed: the same probe, weight for weight, and so
    the same world-GenEval scores (BENCHMARKS.md has the result at a real budget)."""
    common = [*TINY, "--size", "tiny", "--budget", "6steps"]
    code, _, err = run(capsys, "train-probe", *common, "--run-dir", tmp_path / "world")
    assert code == 0, err
    code, out, err = run(capsys, "train-probe", *common, "--data", world_folder, "--run-dir",
                         tmp_path / "data")
    assert code == 0, err
    assert "imagefolder" in " ".join(out.split())
    a, b = weights(tmp_path / "world", 6), weights(tmp_path / "data", 6)
    for name in a:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)
    state = json.loads((tmp_path / "data/probes/bag-of-words/meanflow/probe.json").read_text())
    assert state["data"]["kind"] == "imagefolder" and state["data"]["examples"] == 64
    assert state["data"]["space"] == {"kind": "pixels", "resolution": 32,
                                      "preprocess": state["data"]["space"]["preprocess"]}
    assert "world" not in state
    scores = {}
    for name in ("world", "data"):
        code, out, err = run(capsys, "eval", "--model", "probe:bag-of-words", "--benchmark",
                             "world-geneval", "--steps", "1", "--run-dir", tmp_path / name,
                             "--device", "cpu")
        assert code == 0, err
        rows = [json.loads(line) for line in (tmp_path / name).glob(
            "evals/*/world-geneval/steps-1/results.jsonl").__next__().read_text().splitlines()]
        scores[name] = sorted((r["prompt"], r["sample"], r["correct"]) for r in rows)
    assert scores["world"] == scores["data"]


@pytest.mark.parametrize("kind, size", [("kl", "cpu-latent"), ("dc", "cpu-latent")])
def test_latent_probe_encodes_caches_trains_samples_decodes_and_evaluates(
        capsys, tmp_path, world_folder, tiny_vaes, kind, size):
    args = [*TINY, "--size", size, "--budget", "3steps", "--data", world_folder,
            "--resolution", "16", "--vae", tiny_vaes[kind], "--run-dir", tmp_path / "run"]
    code, out, err = run(capsys, "train-probe", *args)
    assert code == 0, err
    state = json.loads((tmp_path / "run/probes/bag-of-words/meanflow/probe.json").read_text())
    space = state["data"]["space"]
    channels = {"kl": 4, "dc": 8}[kind]
    assert space["kind"] == "latents" and space["shape"] == [channels, 8, 8]
    assert f"latents {channels}x8x8" in " ".join(out.split())
    assert space["class"] == {"kl": "AutoencoderKL", "dc": "AutoencoderDC"}[kind]
    assert space["scaling_factor"] == {"kl": 0.18215, "dc": 0.5}[kind]
    assert space["shift_factor"] == {"kl": 0.1, "dc": 0.0}[kind]
    assert space["subfolder"] == {"kl": "vae", "dc": None}[kind]
    assert state["probe"]["channels"] == channels and state["probe"]["image_size"] == 8
    cache = list((tmp_path.parent / "feature-cache").glob("**/_images/latents-*"))
    assert cache, "latents were not cached"

    # a second probe on the same data reuses every latent (none recomputed)
    from emf_bench.probe import image_cache

    calls = []
    real = image_cache.np.stack
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(image_cache.np, "stack", lambda *a, **k: calls.append(1) or real(*a, **k))
        code, _, err = run(capsys, "train-probe", *args[:-1], tmp_path / "again")
    assert code == 0, err
    assert not calls

    code, _, err = run(capsys, "eval", "--model", "probe:bag-of-words", "--benchmark",
                       "world-geneval", "--steps", "1,2", "--run-dir", tmp_path / "run",
                       "--device", "cpu", "--limit", "6")
    assert code == 0, err
    images = list((tmp_path / "run").glob("evals/*/world-geneval*/steps-1/**/*.png"))
    from PIL import Image

    assert images and Image.open(images[0]).size == (16, 16)  # decoded to pixels


def test_a_latent_probe_on_genevals_own_metadata_with_a_real_detector(
        capsys, tmp_path, world_folder, tiny_vaes, tiny_backends, geneval_metadata_file):
    code, _, err = run(capsys, "train-probe", *TINY, "--size", "cpu-latent", "--budget",
                       "2steps", "--data", world_folder, "--resolution", "16", "--vae",
                       tiny_vaes["dc"], "--run-dir", tmp_path)
    assert code == 0, err
    code, out, err = run(capsys, "eval", "--model", "probe:bag-of-words", "--benchmark",
                         "geneval", "--geneval-metadata", geneval_metadata_file, "--tags",
                         "colors", "--limit", "2", "--images-per-prompt", "2", "--steps", "1",
                         "--detector", "mask2former-hf", "--detector-model",
                         tiny_backends["mask2former"], "--color-model", tiny_backends["clip"],
                         "--device", "cpu", "--run-dir", tmp_path)
    assert code == 0, err
    assert "NOT the official backend" in " ".join(out.split())
    summary = json.loads(next(tmp_path.glob("evals/*/geneval.colors.first2/steps-1/"
                                            "summary.json")).read_text())
    assert summary["generator"]["space"]["class"] == "AutoencoderDC"
    assert set(summary["tasks"]) == {"colors"}


def test_latents_are_keyed_on_the_autoencoder_and_checked_when_sampling(
        tmp_path, world_folder, tiny_vaes):
    from emf_bench.generators.probe import ProbeGenerator
    from emf_bench.probe.image_cache import encode_images
    from emf_bench.probe.sources import read_source
    from emf_bench.probe.spaces import LatentSpace

    source = read_source(str(world_folder))
    space = LatentSpace(str(tiny_vaes["kl"]), 16)
    first, counts = encode_images(source, space, tmp_path / "cache")
    assert counts == {"computed": 64, "reused": 0} and first.dtype == torch.float32
    again, counts = encode_images(source, space, tmp_path / "cache")
    assert counts == {"computed": 0, "reused": 64} and torch.equal(first, again)
    other = LatentSpace(str(tiny_vaes["kl"]), 32)  # another resolution: other latents
    assert encode_images(source, other, tmp_path / "cache")[1]["computed"] == 64
    # the stored latents are the autoencoder's, shifted and scaled
    from emf_bench.probe.spaces import prepare_image

    pixels = prepare_image(source.image_bytes(0), "0", 16)
    direct = space.encode(pixels[None])
    torch.testing.assert_close(first[:1], direct, atol=1e-5, rtol=1e-4)  # batch of 1 vs 32

    # a probe trained in these latents refuses a changed autoencoder
    copy = tmp_path / "vae-copy"
    shutil.copytree(tiny_vaes["kl"], copy)
    from emf_bench.cli import main as cli

    assert cli(["train-probe", *TINY, "--size", "cpu-latent", "--budget", "2steps", "--data",
                str(world_folder), "--resolution", "16", "--vae", str(copy), "--run-dir",
                str(tmp_path / "run")]) == 0
    probe = tmp_path / "run/probes/bag-of-words/meanflow"
    assert ProbeGenerator(probe).space.kind == "latents"
    weights_file = copy / "vae/diffusion_pytorch_model.safetensors"
    tensors = load_file(str(weights_file))
    from safetensors.torch import save_file

    save_file({k: v + 0.01 for k, v in tensors.items()}, str(weights_file))
    with pytest.raises(EmfBenchError, match="not the one this probe was trained with"):
        ProbeGenerator(probe)


def test_presets_refuse_the_other_space(capsys, tmp_path, world_folder, tiny_vaes):
    base = [*TINY, "--budget", "2steps", "--data", world_folder, "--resolution", "16",
            "--run-dir", tmp_path / "run"]
    for extra, message in [
            (["--size", "tiny", "--vae", tiny_vaes["kl"]], "sized for pixels, but --vae"),
            (["--size", "cpu-latent"], "sized for latents, but the data are pixels"),
            (["--size", "latent-dc", "--vae", tiny_vaes["kl"]], "expects 32-channel latents"),
            (["--size", "latent-kl", "--vae", tiny_vaes["dc"]], "expects 4-channel latents"),
            (["--size", "cpu-latent", "--vae", tmp_path / "none"], "does not exist"),
            (["--size", "cpu-latent", "--vae", world_folder], "no autoencoder config")]:
        code, _, err = run(capsys, "train-probe", *base, *extra)
        assert code == 2 and message in " ".join(err.split()), (extra, err)
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run/probes").exists()


def test_bad_data_is_one_line_and_exit_2(capsys, tmp_path, world_folder):
    missing = tmp_path / "missing"
    shutil.copytree(world_folder, missing)
    (missing / "000003.png").unlink()
    nocaptions = tmp_path / "nocaptions"
    shutil.copytree(world_folder, nocaptions)
    (nocaptions / "metadata.jsonl").unlink()
    for data, message in [(missing, "000003.png does not exist"),
                          (nocaptions, "no captions found")]:
        code, _, err = run(capsys, "train-probe", *TINY, "--size", "tiny", "--budget", "2steps",
                           "--data", data, "--run-dir", tmp_path / "run")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run(capsys, "train-probe", *TINY, "--size", "tiny", "--vae", "x")
    assert code == 2 and "apply to --data" in err


def test_an_interrupted_data_probe_resumes_to_the_same_weights(tmp_path, world_folder,
                                                               tiny_vaes, cache):
    from emf_bench.probe.data import UserData
    from emf_bench.probe.sources import read_source
    from emf_bench.probe.spaces import LatentSpace
    from emf_bench.probe.trainer import ProbeTrainer, TrainConfig
    from emf_bench.text.registry import EncoderRegistry

    card = EncoderRegistry.load([]).card("bag-of-words")
    config = TrainConfig(size="cpu-latent", budget="6steps", batch_size=8, train_size=64,
                         checkpoint_every=2, precision="float32", warmup_steps=2)

    def trainer(name, root=world_folder):
        data = UserData(read_source(str(root)), LatentSpace(str(tiny_vaes["kl"]), 16))
        return ProbeTrainer(card, config, data, tmp_path / name, cache)

    trainer("whole").train()
    assert trainer("killed").train(stop_after=3)["stopped"]
    moved = tmp_path / "moved"  # the same data elsewhere: the same probe resumes
    shutil.copytree(world_folder, moved)
    trainer("killed", moved).train(resume=True)
    for name in ("model", "ema"):
        a = load_file(str(tmp_path / f"whole/checkpoints/step-0000006/{name}.safetensors"))
        b = load_file(str(tmp_path / f"killed/checkpoints/step-0000006/{name}.safetensors"))
        for key in a:
            torch.testing.assert_close(b[key], a[key])
    changed = tmp_path / "changed"
    shutil.copytree(world_folder, changed)
    (changed / "metadata.jsonl").write_text((changed / "metadata.jsonl").read_text().replace(
        '"text": "', '"text": "a ', 1))
    with pytest.raises(EmfBenchError, match="another training data"):
        trainer("whole", changed).train(resume=True)
