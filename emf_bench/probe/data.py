"""Training data for a probe: world scenes, or a user's images (probe/sources.py) in pixels or
an autoencoder's latents (probe/spaces.py), with their captions' text features.

World images are rendered once (uint8, the world's canvas); a user's are prepared once through
the image cache. Captions are encoded once through the feature cache; pooled features (and
token features when the probe attends to them) are standardised with statistics over the
training captions, which travel with the checkpoint so prompts at generation time are treated
the same way.
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
    """Examples are (image, caption) pairs: `images` holds each image once, in its space (uint8
    pixels or float latents); `image_index` maps examples to images (None: one to one)."""

    images: torch.Tensor  # (M, C, H, W) uint8 pixels or float latents
    caption_index: torch.Tensor  # (N,) row into conditions
    captions: list[str]  # distinct captions, in conditions order
    conditions: Conditions
    stats: FeatureStats
    tasks: list[str] = field(default_factory=list)  # each example's world task
    image_index: torch.Tensor | None = None  # (N,) row into images

    def __len__(self) -> int:
        return len(self.caption_index)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, dict]:
        rows = index if self.image_index is None else self.image_index[index]
        x = self.images[rows]
        x = x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()
        return x, self.conditions.rows(self.caption_index[index])


def _with_captions(images: torch.Tensor, example_captions: list[str], card, cache,
                   need_tokens: bool, device: str | None, batch_size: int = 64,
                   **extra) -> ProbeDataset:
    """A dataset of `images` and one caption per example, its captions encoded once each."""
    from emf_bench.text.cache import encode_texts

    captions = list(dict.fromkeys(example_captions))
    row = {c: i for i, c in enumerate(captions)}
    encoded = encode_texts(card, captions, cache, need_tokens=need_tokens, device=device,
                           batch_size=batch_size)
    stats = FeatureStats.fit(encoded.pooled, encoded.tokens)
    return ProbeDataset(images=images,
                        caption_index=torch.tensor([row[c] for c in example_captions]),
                        captions=captions,
                        conditions=make_conditions(encoded.pooled, encoded.tokens, stats),
                        stats=stats, **extra)


def build_dataset(world, card, cache, size: int, seed: int, need_tokens: bool,
                  device: str | None = "cpu", batch_size: int = 64) -> ProbeDataset:
    """`size` world training examples with standardised features of their captions."""
    if size < 1:
        raise EmfBenchError(f"the probe's training set is empty (--train-size {size})")
    examples = list(track(world.training_set(size, seed=seed), "rendering training scenes",
                          total=size))
    images = np.stack([world.render(e.scene) for e in examples])
    return _with_captions(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                          [e.caption for e in examples], card, cache, need_tokens, device,
                          batch_size, tasks=[e.task for e in examples])


class WorldData:
    """The built-in world's training scenes (train-probe's default)."""

    def __init__(self, world):
        self.world = world

    def record(self) -> dict:
        return {"world": self.world.config.to_dict()}

    def build(self, card, cache, size: int, seed: int, need_tokens: bool,
              device: str | None) -> ProbeDataset:
        return build_dataset(self.world, card, cache, size, seed, need_tokens, device)


class UserData:
    """A user's image-caption pairs (probe/sources.py) in a space (probe/spaces.py): every
    (image, caption) pair an example, in the source's order, the first `size` of them."""

    def __init__(self, source, space):
        self.source, self.space = source, space

    def record(self) -> dict:
        return {"data": {**self.source.describe(), "space": self.space.describe()}}

    def build(self, card, cache, size: int, seed: int, need_tokens: bool,
              device: str | None) -> ProbeDataset:
        from emf_bench.probe.image_cache import encode_images

        pairs = [(i, c) for i, captions in enumerate(self.source.captions) for c in captions]
        pairs = pairs[:size]
        used = sorted({i for i, _ in pairs})
        images, _ = encode_images(_Subset(self.source, used), self.space, cache.root)
        where = {i: n for n, i in enumerate(used)}
        return _with_captions(images, [c for _, c in pairs], card, cache, need_tokens, device,
                              image_index=torch.tensor([where[i] for i, _ in pairs]))


class _Subset:
    """The images of a source at `indices` (the ones a capped training set uses)."""

    def __init__(self, source, indices: list[int]):
        self.source, self.indices = source, indices
        self.names = [source.names[i] for i in indices]

    def digests(self) -> list[str]:
        every = self.source.digests()
        return [every[i] for i in self.indices]

    def image_bytes(self, i: int) -> bytes:
        return self.source.image_bytes(self.indices[i])
