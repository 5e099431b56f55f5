"""A trained probe as a generator: prompts -> text features (through the cache) -> MeanFlow
sampling at any number of steps, with optional guidance.

Sampling runs under bf16 autocast where the device does bf16 natively (`precision="auto"`, the
rule training follows; the probes trained in it): on a 2-core AVX512-BF16 CPU a 1-step batch
sampled 1.7x faster than in float32 (bench/probe_speed.py). The precision is part of the
generator's description, so rows sampled otherwise are never reused as these."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emf_bench.errors import EmfBenchError
from emf_bench.probe.checkpoint import load_checkpoint, trained_guidance
from emf_bench.probe.data import FeatureStats, make_conditions
from emf_bench.probe.model import build_model
from emf_bench.probe.precision import autocast, resolve_precision
from emf_bench.probe.presets import ProbeConfig
from emf_bench.probe.sampler import MeanFlowSampler, SamplingRecord
from emf_bench.probe.spaces import PixelSpace, space_from_record


def image_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))


def state_fingerprint(weights: dict[str, torch.Tensor], stats: FeatureStats) -> str:
    """sha256 of an in-memory probe's weights and feature statistics (a checkpoint's own is
    that of its files)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted({**weights, **stats.tensors()}.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class ProbeGenerator:
    official = False

    def __init__(self, path: Path | str, device: str | None = "cpu", cache=None,
                 batch_size: int = 64, precision: str = "auto"):
        from emf_bench.text.base import resolve_device
        from emf_bench.text.card import EncoderCard

        checkpoint = load_checkpoint(Path(path))
        self.path = checkpoint.path
        self.state = checkpoint.state
        self.fingerprint = checkpoint.fingerprint
        self.card = EncoderCard.from_dict(self.state["encoder"],
                                          source=f"checkpoint {checkpoint.path}")
        self.config = ProbeConfig.from_dict(self.state["probe"],
                                            f"checkpoint {checkpoint.path} (probe)")
        self.objective = self.state["train"]["objective"]
        self.trained_guidance = trained_guidance(self.state["train"])
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        try:
            self.model = build_model(self.config)
        except (ValueError, RuntimeError, TypeError, ZeroDivisionError) as err:
            raise EmfBenchError(f"checkpoint {checkpoint.path} records a probe architecture "
                                f"that cannot be built ({str(err).splitlines()[0]})") from None
        try:
            self.model.load_state_dict(checkpoint.ema)
        except RuntimeError as err:
            raise EmfBenchError(f"checkpoint {checkpoint.path} does not match the probe "
                                f"architecture it records ({str(err).splitlines()[0]})"
                                ) from None
        self.model.to(self.device).eval()
        self.stats = FeatureStats.from_tensors(checkpoint.conditioning)
        self.cache, self.batch_size = cache, batch_size
        self.name = f"probe:{self.card.name}/{self.objective}"
        self.last_record: SamplingRecord | None = None
        # a probe trained in an autoencoder's latents decodes through it (loaded here)
        data = self.state.get("data") or {}
        self.space = space_from_record(data.get("space"), self.device)

    @classmethod
    def from_model(cls, model: torch.nn.Module, card, stats: FeatureStats, objective: str,
                   cache=None, step: int = 0, batch_size: int = 64,
                   train: dict[str, Any] | None = None, space=None,
                   precision: str = "float32") -> ProbeGenerator:
        """A generator over an in-memory probe (learning curves sample it during training)."""
        self = cls.__new__(cls)
        self.precision = precision
        self.path, self.card, self.stats, self.objective = None, card, stats, objective
        self.model, self.config = model, model.config
        self.device = next(model.parameters()).device
        self.state = {"step": step}
        self.fingerprint = state_fingerprint(model.state_dict(), stats)
        self.trained_guidance = trained_guidance(train or {"objective": objective})
        self.cache, self.batch_size = cache, batch_size
        self.name = f"probe:{card.name}/{objective}"
        self.last_record = None
        self.space = space or PixelSpace(self.config.image_size)
        return self

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "probe", "official": False,
                "path": None if self.path is None else str(self.path),
                "step": self.state["step"], "weights": self.fingerprint,
                "encoder": self.card.name,
                "objective": self.objective,
                "trained_guidance": self.trained_guidance, "precision": self.precision,
                **({"space": self.space.describe()} if self.space.kind != "pixels" else {})}

    def conditions(self, prompts: Sequence[str]):
        from emf_bench.text.cache import encode_texts

        unique = list(dict.fromkeys(prompts))
        encoded = encode_texts(self.card, unique, self.cache,
                               need_tokens=self.config.conditioning != "pooled",
                               device=str(self.device))
        conditions = make_conditions(encoded.pooled, encoded.tokens, self.stats)
        row = {p: i for i, p in enumerate(unique)}
        return conditions, torch.tensor([row[p] for p in prompts])

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], steps: int, seeds: Sequence[int],
                 guidance: float = 1.0) -> list[np.ndarray]:
        conditions, rows = self.conditions(prompts)
        shape = (self.config.channels, self.config.image_size, self.config.image_size)
        images: list[np.ndarray] = []
        sampler = MeanFlowSampler()
        for start in range(0, len(prompts), self.batch_size):
            part = rows[start:start + self.batch_size]
            noise = torch.stack([image_noise(s, shape) for s in seeds[start:start + len(part)]])
            cond = conditions.rows(part)
            with autocast(self.device, self.precision):  # the network; z stays float32
                x, self.last_record = sampler.sample(
                    self.model, noise.to(self.device), cond["pooled"].to(self.device),
                    None if cond["tokens"] is None else cond["tokens"].to(self.device),
                    None if cond["mask"] is None else cond["mask"].to(self.device),
                    steps=steps, guidance=guidance, trained_guidance=self.trained_guidance)
            if not bool(torch.isfinite(x).all()):
                raise EmfBenchError(f"{self.name} ({self.path or 'in memory'}) sampled NaN or "
                                    f"infinite pixels at {steps} step(s): its weights are "
                                    f"broken; retrain it or use an earlier checkpoint")
            images += list(self.space.decode(x))
        return images
