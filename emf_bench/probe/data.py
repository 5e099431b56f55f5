"""Training data for a probe: world scenes with their captions' text features.

Images are rendered once (uint8, the world's canvas). Captions are encoded once through the
feature cache; pooled features (and token features when the probe attends to them) are
standardised with statistics over the training captions, which travel with the checkpoint so
prompts at generation time are treated the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from emf_bench.errors import EmfBenchError
from emf_bench.progress import track


@dataclass
class FeatureStats:
    """Per-dimension mean and std of pooled and token features over the training captions."""

    pooled_mean: torch.Tensor
    pooled_std: torch.Tensor
    token_mean: torch.Tensor | None = None
    token_std: torch.Tensor | None = None

    @classmethod
    def fit(cls, pooled: torch.Tensor, tokens: list[torch.Tensor] | None) -> FeatureStats:
        pooled = pooled.float()
        p_mean, p_std = pooled.mean(0), pooled.std(0, unbiased=False)
        if tokens is None:
            return cls(p_mean, p_std)
        flat = torch.cat(tokens).float()
        return cls(p_mean, p_std, flat.mean(0), flat.std(0, unbiased=False))

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_tensors(cls, data: dict[str, torch.Tensor]) -> FeatureStats:
        return cls(data["pooled_mean"], data["pooled_std"], data.get("token_mean"),
                   data.get("token_std"))


@dataclass
class Conditions:
    """Standardised conditions for a list of texts: pooled (N, D), tokens (N, L, D) + mask."""

    pooled: torch.Tensor
    tokens: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def rows(self, index: torch.Tensor) -> dict[str, torch.Tensor | None]:
        return {"pooled": self.pooled[index],
                "tokens": None if self.tokens is None else self.tokens[index].float(),
                "mask": None if self.mask is None else self.mask[index]}


def standardize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std per dimension; 0 on dimensions that never varied in training.

    Such a dimension carries no information the probe could have learned (a bag-of-words
    bucket of a word no training caption uses: "photo" in GenEval's held-out "a photo of ...").
    Dividing by a clamped std instead turns it into a huge input the network has never seen,
    and every prompt containing the word into garbage.
    """
    live = std > 1e-5 * float(std.max().clamp(min=1e-12))
    return torch.where(live, (x.float() - mean) / torch.where(live, std, 1.0),
                       torch.zeros((), dtype=torch.float32))


def make_conditions(pooled: torch.Tensor, tokens: list[torch.Tensor] | None,
                    stats: FeatureStats, max_tokens: int | None = None) -> Conditions:
    pooled = standardize(pooled, stats.pooled_mean, stats.pooled_std)
    if tokens is None:
        return Conditions(pooled)
    length = max_tokens or max(t.shape[0] for t in tokens)
    dim = tokens[0].shape[1]
    padded = torch.zeros(len(tokens), length, dim, dtype=torch.float16)
    mask = torch.zeros(len(tokens), length, dtype=torch.bool)
    for i, t in enumerate(tokens):
        n = min(t.shape[0], length)
        padded[i, :n] = standardize(t[:n], stats.token_mean, stats.token_std).half()
        mask[i, :n] = True
    return Conditions(pooled, padded, mask)


@dataclass
class ProbeDataset:
    images: torch.Tensor  # (N, 3, H, W) uint8
    caption_index: torch.Tensor  # (N,) row into conditions
    captions: list[str]  # distinct captions, in conditions order
    conditions: Conditions
    stats: FeatureStats
    tasks: list[str] = field(default_factory=list)  # each example's world task

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, dict]:
        x = self.images[index].float() / 127.5 - 1.0
        return x, self.conditions.rows(self.caption_index[index])


def build_dataset(world, card, cache, size: int, seed: int, need_tokens: bool,
                  device: str | None = "cpu", batch_size: int = 64) -> ProbeDataset:
    """`size` world training examples with standardised features of their captions."""
    from emf_bench.text.cache import encode_texts

    if size < 1:
        raise EmfBenchError(f"the probe's training set is empty (--train-size {size})")
    examples = list(track(world.training_set(size, seed=seed), "rendering training scenes",
                          total=size))
    captions = list(dict.fromkeys(e.caption for e in examples))
    row = {c: i for i, c in enumerate(captions)}
    images = np.stack([world.render(e.scene) for e in examples])
    encoded = encode_texts(card, captions, cache, need_tokens=need_tokens, device=device,
                           batch_size=batch_size)
    stats = FeatureStats.fit(encoded.pooled, encoded.tokens)
    return ProbeDataset(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        caption_index=torch.tensor([row[e.caption] for e in examples]),
        captions=captions,
        conditions=make_conditions(encoded.pooled, encoded.tokens, stats),
        stats=stats,
        tasks=[e.task for e in examples],
    )
