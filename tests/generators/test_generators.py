"""Generators the sweep evaluates: a diffusers pipeline (through a stand-in) and folders of
pre-generated images."""

import re
import shutil
import types

import numpy as np
import pytest
import torch

from emf_bench.errors import EmfBenchError
from emf_bench.generators.diffusers import DiffusersGenerator
from emf_bench.generators.folder import FolderGenerator


def test_diffusers_generator_passes_steps_guidance_and_seeds_through():
    seen = []

    class FakePipeline:
        def __call__(self, prompt, num_inference_steps, guidance_scale, generator, output_type,
                     **kw):
            seen.append((list(prompt), num_inference_steps, guidance_scale))
            images = [np.full((4, 4, 3), torch.rand(1, generator=g).item(), dtype=np.float32)
                      for g in generator]
            return types.SimpleNamespace(images=images)

    gen = DiffusersGenerator("fake/model", device="cpu", batch_size=2, pipeline=FakePipeline())
    a = gen.generate(["x", "y", "z"], steps=4, seeds=[1, 2, 1], guidance=3.5)
    assert seen == [(["x", "y"], 4, 3.5), (["z"], 4, 3.5)]
    assert a[0].dtype == np.uint8 and np.array_equal(a[0], a[2]) and not np.array_equal(a[0],
                                                                                        a[1])
    assert gen.describe()["kind"] == "pipeline"


def test_a_folder_per_step_count_and_its_name(tmp_path):
    (tmp_path / "sana-1step").mkdir()
    gen = FolderGenerator(tmp_path / "sana-{steps}step")
    assert gen.per_steps and gen.name == "images:sana"
    assert gen.root(1) == tmp_path / "sana-1step"
    with pytest.raises(EmfBenchError, match="sana-4step does not exist"):
        gen.root(4)
    assert gen.describe() == {"name": "images:sana", "kind": "folder", "official": False,
                              "path": str(tmp_path / "sana-{steps}step")}


@pytest.fixture
def probe_copy(study_run, tmp_path):
    run, _ = study_run
    folder = tmp_path / "probe"
    shutil.copytree(run / "probes/class-label/meanflow", folder)
    return folder


def test_a_checkpoint_with_nan_weights_is_refused_naming_the_tensor(probe_copy):
    from safetensors.torch import load_file, save_file

    from emf_bench.generators.probe import ProbeGenerator
    from emf_bench.probe.checkpoint import checkpoint_dir

    good = ProbeGenerator(probe_copy)
    assert len(good.fingerprint) == 64 and good.describe()["weights"] == good.fingerprint
    ema = checkpoint_dir(probe_copy) / "ema.safetensors"
    weights = load_file(str(ema))
    name = sorted(weights)[3]
    weights[name] = weights[name].clone().fill_(float("nan"))
    save_file(weights, str(ema))
    with pytest.raises(EmfBenchError, match=f"tensor '{re.escape(name)}' holds NaN"):
        ProbeGenerator(probe_copy)


def test_a_probe_that_samples_non_finite_pixels_fails_instead_of_writing_them(probe_copy):
    import torch

    from emf_bench.generators.probe import ProbeGenerator

    generator = ProbeGenerator(probe_copy)
    with torch.no_grad():
        for parameter in generator.model.parameters():
            parameter.fill_(1e30)
    with pytest.raises(EmfBenchError, match="sampled NaN or infinite pixels at 1 step"):
        generator.generate(["a photo of a red circle"], 1, [0])


def test_a_moved_probe_is_the_same_generator(probe_copy, tmp_path):
    from emf_bench.evaluation.runner import generator_identity
    from emf_bench.generators.probe import ProbeGenerator

    before = ProbeGenerator(probe_copy).describe()
    shutil.move(probe_copy, tmp_path / "moved")
    after = ProbeGenerator(tmp_path / "moved").describe()
    assert before["path"] != after["path"]
    assert generator_identity(before) == generator_identity(after)


def test_a_probe_samples_in_the_precision_it_trains_in_and_records_it(probe_copy, monkeypatch):
    import numpy as np
    import torch

    from emf_bench.evaluation.runner import generator_identity
    from emf_bench.generators.probe import ProbeGenerator
    from emf_bench.probe import precision

    plain = ProbeGenerator(probe_copy, precision="float32")
    # the study's CPUs have bf16; this one is made to say so either way (bf16 runs emulated)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    fast = ProbeGenerator(probe_copy)  # auto: bf16 where the device does it natively
    assert (plain.describe()["precision"], fast.describe()["precision"]) == ("float32",
                                                                             "bfloat16")
    assert generator_identity(plain.describe()) != generator_identity(fast.describe())
    with torch.no_grad():  # a probe that draws something: zero-initialised outputs draw noise
        for parameter in plain.model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        fast.model.load_state_dict(plain.model.state_dict())
    a, b = (g.generate(["a photo of a red circle"], 1, [0])[0].astype(float)
            for g in (plain, fast))
    assert 0 < np.abs(a - b).max() < 64  # bf16 arithmetic: close to float32's, not equal
    monkeypatch.setattr(precision, "cpu_flags", lambda: set())
    assert ProbeGenerator(probe_copy).describe()["precision"] == "float32"  # no bf16 here
