"""A diffusers text-to-image pipeline as a generator (`[diffusers]` extra).

`num_inference_steps` and `guidance_scale` are passed through; one `torch.Generator` per image,
seeded, so every image is reproducible on its own whatever batch it is generated in. What a
few-step model needs besides is given and recorded: another scheduler class built from the
pipeline's scheduler config (`scheduler`), and any keyword of the pipeline's call
(`call_kwargs`: `timesteps`, `sigmas`, `max_sequence_length`, `use_resolution_binning`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError
from emf_bench.generators.callable import as_rgb8

DTYPES = ("float32", "float16", "bfloat16")


class DiffusersGenerator:
    kind = "pipeline"
    official = False

    def __init__(self, model: str, device: str | None = "auto", dtype: str = "float32",
                 batch_size: int = 4, size: int | None = None, pipeline: Any = None,
                 revision: str | None = None, scheduler: str | None = None,
                 name: str | None = None, **call_kwargs: Any):
        import torch

        from emf_bench.text.base import resolve_device

        if dtype not in DTYPES:
            raise EmfBenchError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        self.model_id, self.dtype, self.revision = model, dtype, revision
        self.device = resolve_device(device)
        self.batch_size, self.size, self.call_kwargs = batch_size, size, call_kwargs
        self.name = name or f"pipeline:{model}"
        self._torch = torch
        if pipeline is None:
            pipeline = self._load(model)
        self.scheduler = scheduler
        if scheduler is not None:
            pipeline.scheduler = _scheduler(scheduler, pipeline.scheduler)
        if hasattr(pipeline, "set_progress_bar_config"):
            pipeline.set_progress_bar_config(disable=True)
        _check_call_args(pipeline, call_kwargs, self.name)
        self.pipeline = pipeline.to(self.device) if hasattr(pipeline, "to") else pipeline

    def _load(self, model: str):
        try:
            import diffusers
        except ImportError as err:
            raise EmfBenchError(f"--pipeline needs the [diffusers] extra: {err}") from None
        from emf_bench.text.base import is_local_path, library_logs, offline

        if is_local_path(model) and not Path(model).expanduser().exists():
            raise EmfBenchError(f"pipeline path {model} does not exist")
        diffusers.utils.logging.disable_progress_bar()  # load reports stay out of the terminal
        try:
            import transformers

            transformers.utils.logging.disable_progress_bar()
        except ImportError:
            pass
        try:
            with library_logs(diffusers):
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
                "size": self.size, "scheduler": self.scheduler or type(getattr(
                    self.pipeline, "scheduler", None)).__name__,
                "call_kwargs": self.call_kwargs}

    def generate(self, prompts: Sequence[str], steps: int, seeds: Sequence[int],
                 guidance: float = 1.0) -> list[np.ndarray]:
        torch = self._torch
        images: list[np.ndarray] = []
        size = {"height": self.size, "width": self.size} if self.size else {}
        for start in range(0, len(prompts), self.batch_size):
            part = list(prompts[start:start + self.batch_size])
            generators = [torch.Generator(device=str(self.device)).manual_seed(int(s))
                          for s in seeds[start:start + len(part)]]
            try:
                out = self.pipeline(prompt=part, num_inference_steps=steps,
                                    guidance_scale=guidance, generator=generators,
                                    output_type="np", **size, **self.call_kwargs)
            except (TypeError, ValueError) as err:  # a call option the pipeline refuses
                raise EmfBenchError(f"{self.name} at {steps} step(s): "
                                    f"{str(err).splitlines()[0]}") from None
            if len(out.images) != len(part):
                raise EmfBenchError(f"{self.name} returned {len(out.images)} image(s) for "
                                    f"{len(part)} prompt(s)")
            images += [as_rgb8(image, f"{self.name}: image for {prompt!r}")
                       for image, prompt in zip(out.images, part, strict=True)]
        return images


def _check_call_args(pipeline: Any, call_kwargs: dict[str, Any], name: str) -> None:
    """Refuse a call option the pipeline does not name (many take **kwargs and would ignore
    it silently)."""
    import inspect

    try:
        parameters = inspect.signature(pipeline.__call__).parameters
    except (TypeError, ValueError):
        return
    named = {p for p, v in parameters.items() if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
    unknown = sorted(set(call_kwargs) - named)
    if unknown:
        from emf_bench.errors import unknown_name

        raise unknown_name(f"call option of {name} (--pipeline-arg)", unknown[0], named)


def _scheduler(name: str, current: Any) -> Any:
    """Scheduler class `name` from diffusers, built from the pipeline's scheduler config."""
    import diffusers

    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and name.endswith("Scheduler")):
        known = sorted(n for n in dir(diffusers) if n.endswith("Scheduler"))
        from emf_bench.errors import unknown_name

        raise unknown_name("diffusers scheduler", name, known)
    return cls.from_config(current.config)


def parse_call_args(items: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs, each value JSON when it parses (numbers, lists, true/false/null)."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise EmfBenchError(f"--pipeline-arg {item!r}: expected KEY=VALUE, e.g. "
                                f"timesteps=[999,500] or use_resolution_binning=false")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
