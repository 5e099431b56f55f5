"""Generators the sweep evaluates: a diffusers pipeline (through a stand-in) and folders of
pre-generated images."""

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
