"""Any generator as a Python callable: `eval --generator module:function` (or `file.py:function`,
or a name registered in the entry-point group `emf_bench.generators`), for models that are not
diffusers pipelines (EMF's own BLIP3o-NEXT + SANA stack, a research checkpoint).

The callable takes `(prompts, steps, seeds, guidance)` and returns one image per prompt: PIL
images, (H, W, 3) uint8 arrays or float arrays in [0, 1] (numpy or torch). A class is
instantiated once without arguments. If the object has `describe()`, what it returns (its
weights, its settings) is recorded in every result row's key and in the summary, so results of
another model or other settings are never reused as this one's.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError

GENERATOR_GROUP = "emf_bench.generators"


def load_callable(spec: str) -> Any:
    """`module:attr`, `path/to/file.py:attr` or an entry point's name."""
    if ":" not in spec:
        found = {ep.name: ep for ep in importlib.metadata.entry_points(group=GENERATOR_GROUP)}
        if spec not in found:
            raise EmfBenchError(f"--generator {spec}: give module:callable or file.py:callable"
                                f" (registered names: {', '.join(sorted(found)) or 'none'})")
        try:
            return found[spec].load()
        except Exception as err:
            raise EmfBenchError(f"--generator {spec}: cannot load entry point "
                                f"{found[spec].value} ({err})") from None
    source, _, attr = spec.rpartition(":")
    try:
        if source.endswith(".py"):
            from emf_bench.inputs import existing_file

            path = existing_file(source, "--generator file")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(source)
    except EmfBenchError:
        raise
    except Exception as err:  # the user's module failing to import is their input
        raise EmfBenchError(f"--generator {spec}: cannot import {source} "
                            f"({type(err).__name__}: {err})") from None
    if not hasattr(module, attr):
        raise EmfBenchError(f"--generator {spec}: {source} has no {attr!r}")
    return getattr(module, attr)


def as_rgb8(image: Any, where: str) -> np.ndarray:
    """A returned image as (H, W, 3) uint8, or one line saying what it was."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return np.asarray(image.convert("RGB"))
    if hasattr(image, "detach"):  # a torch tensor
        image = image.detach().float().cpu().numpy()
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise EmfBenchError(f"{where}: expected an (H, W, 3) image, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise EmfBenchError(f"{where}: expected uint8 or float pixels, got {array.dtype}")
    if not np.isfinite(array).all():
        raise EmfBenchError(f"{where}: NaN or infinite pixels")
    return (np.clip(array, 0, 1) * 255).round().astype(np.uint8)


class CallableGenerator:
    kind = "callable"
    official = False

    def __init__(self, spec: str, name: str | None = None, function: Callable | None = None):
        self.spec = spec
        target = function if function is not None else load_callable(spec)
        if isinstance(target, type):
            try:
                target = target()
            except Exception as err:
                raise EmfBenchError(f"--generator {spec}: {target.__name__}() failed "
                                    f"({type(err).__name__}: {err})") from None
        if not callable(target):
            raise EmfBenchError(f"--generator {spec}: {type(target).__name__} is not callable")
        self.function = target
        self.name = name or f"generator:{spec.rpartition(':')[2] or spec}"

    def describe(self) -> dict[str, Any]:
        settings = self.function.describe() if hasattr(self.function, "describe") else None
        module = getattr(self.function, "__module__", None) or ""
        top = module.split(".")[0]
        try:
            version = importlib.metadata.version(top) if top else None
        except importlib.metadata.PackageNotFoundError:
            version = None
        return {"name": self.name, "kind": self.kind, "official": False,
                "callable": Path(self.spec).name if ".py:" in self.spec else self.spec,
                "version": version, "settings": settings}

    def generate(self, prompts: Sequence[str], steps: int, seeds: Sequence[int],
                 guidance: float = 1.0) -> list[np.ndarray]:
        try:
            images = self.function(list(prompts), steps, list(seeds), guidance)
        except EmfBenchError:
            raise
        except Exception as err:
            raise EmfBenchError(f"{self.name} failed at {steps} step(s) on {len(prompts)} "
                                f"prompt(s): {type(err).__name__}: {err}") from None
        images = list(images) if images is not None else []
        if len(images) != len(prompts):
            raise EmfBenchError(f"{self.name} returned {len(images)} image(s) for "
                                f"{len(prompts)} prompt(s) at {steps} step(s)")
        return [as_rgb8(image, f"{self.name}: image {i} for {prompts[i]!r}")
                for i, image in enumerate(images)]
