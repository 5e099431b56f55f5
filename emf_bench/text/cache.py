"""The feature cache: features of (encoder card, weights, text), kept across runs.

One folder per fingerprint (`<name>-<hash>`; the hash covers every card field that changes
features and a signature of the weights), holding append-only safetensors shards: `pooled`
(n, D) float32, `truncated` (n,), and when asked for, token features `tokens` (sum of lengths,
D) float16 with `offsets` (n + 1). Each shard is written atomically as soon as its texts are
encoded, so an interrupted run keeps everything it finished. A text's entry is found by a hash
of the fingerprint and the text, never by the text alone: changing the layer, pooling,
template or weights can not return vectors computed under other settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from emf_bench import distributed
from emf_bench.errors import EmfBenchError
from emf_bench.progress import stage, track
from emf_bench.storage import atomic_write_json, ensure_dir, read_shards, write_shard
from emf_bench.text.card import EncoderCard

CACHE_ENV = "EMF_BENCH_CACHE"


def default_cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "emf-bench" / "features"


@dataclass
class _Entry:
    shard: Path
    row: int
    has_tokens: bool


class FeatureStore:
    """The cached features of one encoder fingerprint."""

    def __init__(self, folder: Path, fingerprint: str, description: dict):
        self.folder = ensure_dir(folder, "feature cache")
        self.fingerprint = fingerprint
        if not (folder / "card.json").exists():
            atomic_write_json(folder / "card.json", description)
        self._index: dict[str, _Entry] | None = None
        self._shards: dict[Path, dict[str, torch.Tensor]] = {}

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.fingerprint}\0{text}".encode()).hexdigest()[:32]

    @property
    def index(self) -> dict[str, _Entry]:
        if self._index is None:
            self._index = {}
            for shard, keys, names in read_shards(self.folder, "feature"):
                has_tokens = "tokens" in names
                for row, key in enumerate(keys):
                    old = self._index.get(key)
                    if old is None or (has_tokens and not old.has_tokens):
                        self._index[key] = _Entry(shard, row, has_tokens)
        return self._index

    def missing(self, texts: Sequence[str], need_tokens: bool) -> list[str]:
        index = self.index
        return [t for t in texts if (e := index.get(self.key(t))) is None
                or (need_tokens and not e.has_tokens)]

    def put(self, texts: Sequence[str], pooled: torch.Tensor, truncated: torch.Tensor,
            tokens: Sequence[torch.Tensor] | None = None) -> None:
        tensors = {"pooled": pooled.float().contiguous(),
                   "truncated": truncated.to(torch.uint8).contiguous()}
        if tokens is not None:
            lengths = torch.tensor([t.shape[0] for t in tokens])
            tensors["offsets"] = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
            tensors["tokens"] = torch.cat([t.to(torch.float16) for t in tokens]).contiguous()
        keys = [self.key(t) for t in texts]
        shard = write_shard(self.folder, tensors, keys, {"texts": json.dumps(list(texts))})
        for row, key in enumerate(keys):
            self.index[key] = _Entry(shard, row, tokens is not None)

    def _tensors(self, shard: Path) -> dict[str, torch.Tensor]:
        if shard not in self._shards:
            from safetensors.torch import load_file

            self._shards[shard] = load_file(str(shard))
        return self._shards[shard]

    def get(self, texts: Sequence[str], need_tokens: bool
            ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
        pooled, truncated, tokens = [], [], []
        for text in texts:
            entry = self.index[self.key(text)]
            data = self._tensors(entry.shard)
            pooled.append(data["pooled"][entry.row])
            truncated.append(bool(data["truncated"][entry.row]))
            if need_tokens:
                start, end = data["offsets"][entry.row:entry.row + 2].tolist()
                tokens.append(data["tokens"][start:end].float())
        return (torch.stack(pooled), torch.tensor(truncated, dtype=torch.bool),
                tokens if need_tokens else None)


class FeatureCache:
    """All cached features under one root (default: ~/.cache/emf-bench/features)."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def store(self, card: EncoderCard, weights_signature: str) -> FeatureStore:
        fingerprint = card.fingerprint(weights_signature)
        description = {"card": card.to_dict(), "feature_fields": card.feature_fields(),
                       "weights": weights_signature, "fingerprint": fingerprint}
        return FeatureStore(self.root / f"{card.name}-{fingerprint[:16]}", fingerprint,
                            description)


@dataclass
class EncodedTexts:
    """Features of a list of texts, in its order, and how they were obtained."""

    pooled: torch.Tensor  # (N, D) float32
    truncated: torch.Tensor  # (N,) bool
    tokens: list[torch.Tensor] | None  # per text (L_i, D), when asked for
    computed: int  # distinct texts encoded in this call
    cached: int  # distinct texts served from the cache
    seconds: float
    fingerprint: str
    weights: str


def _my_share(texts: list[str], size: int) -> list[str]:
    """This rank's texts: whole length-sorted batches dealt to ranks, so every text lands in
    exactly the padded batch one process would have put it in (features match bit for bit)."""
    ordered = sorted(texts, key=len)
    batches = [ordered[i:i + size] for i in range(0, len(ordered), size)]
    return [t for b in batches[distributed.rank()::distributed.world_size()] for t in b]


def encode_texts(card: EncoderCard, texts: Sequence[str], cache: FeatureCache | None,
                 need_tokens: bool = False, device: str | None = "cpu", batch_size: int = 32,
                 encoder=None, flush_every: int = 2048) -> EncodedTexts:
    """Features of `texts` through the cache: only texts it lacks are encoded (and the model is
    loaded only then). Under torchrun the missing texts are split across ranks and rank 0
    writes them to the (shared) cache."""
    from emf_bench.text.registry import load_encoder, weights_signature

    if not texts:
        raise EmfBenchError(f"{card.name}: nothing to encode (empty text list)")
    start = time.perf_counter()
    unique = list(dict.fromkeys(texts))
    signature = weights_signature(card)
    store = cache.store(card, signature) if cache is not None else None
    memory: dict[str, tuple[torch.Tensor, bool, torch.Tensor | None]] = {}
    missing = store.missing(unique, need_tokens) if store is not None else unique
    if missing:
        mine = _my_share(missing, encoder.batch_size if encoder is not None else batch_size)
        if mine and encoder is None:
            encoder = load_encoder(card, device=device, batch_size=batch_size)
            resolved = weights_signature(card)
            if resolved != signature and store is not None and distributed.world_size() == 1:
                # a Hub model fetched just now has its commit: its features go under that key
                # (where the next run looks), and what is there already is reused
                signature, store = resolved, cache.store(card, resolved)
                missing = store.missing(unique, need_tokens)
                mine = _my_share(missing, encoder.batch_size)
        pending: list[tuple[str, torch.Tensor, bool, torch.Tensor | None]] = []

        def flush() -> None:
            gathered = distributed.gather_to_main(pending) if store is not None else [pending]
            if gathered is not None:
                rows = [row for part in gathered for row in part]
                if store is not None and rows:
                    store.put([r[0] for r in rows], torch.stack([r[1] for r in rows]),
                              torch.tensor([r[2] for r in rows]),
                              [r[3] for r in rows] if need_tokens else None)
                for text, pooled, truncated, tokens in rows:
                    memory[text] = (pooled, truncated, tokens)
            pending.clear()

        batches = encoder.encode_batches(mine) if mine else iter(())
        total = -(-len(mine) // encoder.batch_size) if mine else 0
        # a slow encoder (BLIP3o-NEXT's sampled image tokens) keeps every finished batch
        every = getattr(encoder, "flush_every", None) or flush_every
        if total > 1:
            stage(f"{card.name}: {len(missing)} text(s) to encode, {len(unique) - len(missing)} "
                  f"already in the feature cache")
        clock = time.perf_counter()
        try:
            for n, (indices, features) in enumerate(track(batches, f"encoding with {card.name}",
                                                          total=total)):
                for row, i in enumerate(indices):
                    tokens = features.tokens[row, features.mask[row]] if need_tokens else None
                    pending.append((mine[i], features.pooled[row],
                                    bool(features.truncated[row]), tokens))
                if n == 0 and total > 2:
                    rate = len(indices) / max(time.perf_counter() - clock, 1e-9)
                    stage(f"{card.name}: about {(len(mine) - len(indices)) / rate / 60:.1f} min "
                          f"for the rest ({rate:.1f} texts/s on the first batch)")
                if len(pending) >= every and distributed.world_size() == 1:
                    flush()
        except torch.OutOfMemoryError:
            if distributed.world_size() == 1:
                flush()  # what finished stays cached
            size = encoder.batch_size
            raise EmfBenchError(f"{card.name}: a batch of {size} texts does not fit in the "
                                f"memory of {device}; pass a smaller --batch-size (say "
                                f"{max(1, size // 2)}); finished batches are cached") from None
        # Ranks flush together (a collective), once, at the end.
        flush()
        if store is not None:
            distributed.barrier()
            store._index = None  # other ranks' rows were written by rank 0: re-read
    if store is not None:
        pooled, truncated, tokens = store.get(texts, need_tokens)
    else:
        gathered = distributed.all_gather(memory)
        merged = {k: v for part in gathered for k, v in part.items()}
        pooled = torch.stack([merged[t][0] for t in texts])
        truncated = torch.tensor([merged[t][1] for t in texts], dtype=torch.bool)
        tokens = [merged[t][2] for t in texts] if need_tokens else None
    return EncodedTexts(pooled, truncated, tokens, computed=len(missing),
                        cached=len(unique) - len(missing), seconds=time.perf_counter() - start,
                        fingerprint=store.fingerprint if store else card.fingerprint(signature),
                        weights=signature)
