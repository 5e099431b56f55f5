"""A diffusers text-to-image pipeline as a generator (`[diffusers]` extra).

`num_inference_steps` and `guidance_scale` are passed through; one `torch.Generator` per image,
seeded, so every image is reproducible on its own whatever batch it is generated in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError

DTYPES = ("float32", "float16", "bfloat16")


class DiffusersGenerator:
    kind = "pipeline"
    official = False

    def __init__(self, model: str, device: str | None = "auto", dtype: str = "float32",
                 batch_size: int = 4, size: int | None = None, pipeline: Any = None,
                 revision: str | None = None, **call_kwargs: Any):
        import torch

        from emf_bench.text.base import resolve_device

        if dtype not in DTYPES:
            raise EmfBenchError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        self.model_id, self.dtype, self.revision = model, dtype, revision
        self.device = resolve_device(device)
        self.batch_size, self.size, self.call_kwargs = batch_size, size, call_kwargs
        self.name = f"pipeline:{model}"
        self._torch = torch
        if pipeline is None:
            pipeline = self._load(model)
        self.pipeline = pipeline.to(self.device) if hasattr(pipeline, "to") else pipeline

    def _load(self, model: str):
        try:
            import diffusers
        except ImportError as err:
            raise EmfBenchError(f"--pipeline needs the [diffusers] extra: {err}") from None
        from emf_bench.text.base import is_local_path, offline

        if is_local_path(model) and not Path(model).expanduser().exists():
            raise EmfBenchError(f"pipeline path {model} does not exist")
        try:
            return diffusers.DiffusionPipeline.from_pretrained(
                model, torch_dtype=getattr(self._torch, self.dtype), revision=self.revision,
                local_files_only=offline())
        except Exception as err:  # diffusers / hub raise many types for the same cause
            raise EmfBenchError(f"cannot load pipeline {model!r}: "
                                f"{str(err).splitlines()[0]}") from None

    def describe(self) -> dict[str, Any]:
        from emf_bench.text.base import model_signature

        return {"name": self.name, "kind": "pipeline", "official": False,
                "model": self.model_id, "revision": self.revision,
                "weights": model_signature(self.model_id, self.revision), "dtype": self.dtype,
                "size": self.size, "call_kwargs": self.call_kwargs}

    def generate(self, prompts: Sequence[str], steps: int, seeds: Sequence[int],
                 guidance: float = 1.0) -> list[np.ndarray]:
        torch = self._torch
        images: list[np.ndarray] = []
        size = {"height": self.size, "width": self.size} if self.size else {}
        for start in range(0, len(prompts), self.batch_size):
            part = list(prompts[start:start + self.batch_size])
            generators = [torch.Generator(device=str(self.device)).manual_seed(int(s))
                          for s in seeds[start:start + len(part)]]
            out = self.pipeline(prompt=part, num_inference_steps=steps, guidance_scale=guidance,
                                generator=generators, output_type="np", **size,
                                **self.call_kwargs)
            for image in out.images:
                array = np.asarray(image)
                if array.dtype != np.uint8:
                    array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
                images.append(array)
        return images
