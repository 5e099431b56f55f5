"""Score encoders: the paper's two metrics plus extras, into a run directory.

`score_encoders` builds the shared pieces once (the caption-image pool, image features, the
prompt ablations, the minimal pairs), then for each encoder gets its features through the cache
and writes `encoders/<name>/scores.json` and one Parquet table per metric (per-query or
per-prompt rows). An encoder whose scores.json was computed with the same settings and the same
features is skipped unless `overwrite`; interrupted runs keep finished encoders and cached
features.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emf_bench import distributed
from emf_bench.analysis.discriminability import DiscriminabilityParams, discriminability
from emf_bench.analysis.disentanglement import (
    DisentanglementParams,
    ablate_prompts,
    disentanglement,
)
from emf_bench.analysis.extras import crossmodal_recall, minimal_pair_items, minimal_pairs
from emf_bench.analysis.image_features import image_features
from emf_bench.analysis.pools import CocoPool, WorldPool
from emf_bench.errors import EmfBenchError, unknown_name
from emf_bench.inputs import read_prompt_folder
from emf_bench.resources import paper_reference
from emf_bench.rundir import provenance
from emf_bench.storage import atomic_path, atomic_write_json
from emf_bench.text.base import UnsupportedText
from emf_bench.text.cache import FeatureCache, encode_texts
from emf_bench.text.card import EncoderCard

METRICS = ("discriminability", "disentanglement", "recall", "minimal-pairs")
DATASETS = ("world", "coco")
SCORES_VERSION = 1


@dataclass
class ScoreConfig:
    dataset: str = "world"
    metrics: tuple[str, ...] | None = None  # None: all that apply to the dataset
    pool_size: int | None = None  # world: 4000 training scenes; coco: all captions
    n_queries: int = 1000
    k: int = 2
    seed: int = 0
    image_features: str | None = None  # world: world-scene; coco: required (hf:...)
    coco_captions: Path | None = None
    coco_images: Path | None = None
    prompts: Path | None = None  # DPG-Bench prompt folder; default: the world's dense prompts
    fraction: tuple[float, float] = (0.2, 0.5)
    recall_items: int = 2000
    minimal_pairs_per_kind: int = 200
    world: dict[str, Any] = field(default_factory=dict)  # WorldConfig fields

    def resolved_metrics(self) -> tuple[str, ...]:
        if self.dataset not in DATASETS:
            raise unknown_name("dataset", self.dataset, DATASETS)
        # recall (an extra: a ridge probe, scikit-learn) only when asked for
        chosen = self.metrics or (("discriminability", "disentanglement", "minimal-pairs")
                                  if self.dataset == "world"
                                  else ("discriminability", "disentanglement"))
        for m in chosen:
            if m not in METRICS:
                raise unknown_name("metric", m, METRICS)
        if "minimal-pairs" in chosen and self.dataset != "world" and self.metrics:
            raise EmfBenchError("minimal-pairs needs the world's captions (--dataset world)")
        if self.dataset == "coco" and {"discriminability", "recall"} & set(chosen):
            if not (self.coco_captions and self.coco_images):
                raise EmfBenchError("--dataset coco needs --coco-captions (captions_train2017"
                                    ".json) and --coco-images (the image folder)")
            if not self.image_features:
                raise EmfBenchError("--dataset coco needs --image-features hf:<model> (the "
                                    "paper uses DINOv3, e.g. hf:facebook/dinov2-base)")
        return tuple(m for m in METRICS if m in chosen)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = list(self.resolved_metrics())
        for key in ("coco_captions", "coco_images", "prompts"):
            out[key] = str(out[key]) if out[key] else None
        out["fraction"] = list(self.fraction)
        return out


class _MemoImages:
    """Image features memoised by pool index: encoders share the pool's image features."""

    def __init__(self, backend):
        self.backend = backend
        self.rows: dict[int, np.ndarray] = {}

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def features(self, pool, indices: np.ndarray) -> np.ndarray:
        todo = np.array([i for i in indices if int(i) not in self.rows], dtype=np.int64)
        if len(todo):
            for i, f in zip(todo, self.backend.features(pool, todo), strict=True):
                self.rows[int(i)] = f
        return np.stack([self.rows[int(i)] for i in indices])


@dataclass
class _Shared:
    pool: Any = None
    images: Any = None
    prompts: pd.DataFrame | None = None
    prompt_source: dict[str, Any] | None = None
    pairs: pd.DataFrame | None = None


def _prepare(config: ScoreConfig, metrics: tuple[str, ...], device: str | None) -> _Shared:
    from emf_bench.world import World, WorldConfig

    shared = _Shared()
    world = World(WorldConfig.from_dict(config.world)) if (
        config.dataset == "world" or "minimal-pairs" in metrics or config.prompts is None) \
        else None
    if {"discriminability", "recall"} & set(metrics):
        if config.dataset == "world":
            shared.pool = WorldPool(world, config.pool_size or 4000, config.seed)
            spec = config.image_features or "world-scene"
        else:  # resolved_metrics() checked the COCO inputs are given
            shared.pool = CocoPool(config.coco_captions, config.coco_images, config.pool_size,
                                   config.seed)
            spec = config.image_features
        shared.images = _MemoImages(image_features(spec, world=world, device=device))
    if "disentanglement" in metrics:
        if config.prompts is not None:
            prompts = read_prompt_folder(config.prompts)
            shared.prompt_source = {"folder": str(config.prompts), "count": len(prompts)}
        else:
            prompts = world.dense_suite().prompts
            shared.prompt_source = {"world_dense_prompts": len(prompts)}
        shared.prompts = ablate_prompts(prompts, DisentanglementParams(config.fraction,
                                                                       config.seed))
    if "minimal-pairs" in metrics:
        shared.pairs = minimal_pair_items(world, config.minimal_pairs_per_kind, config.seed)
    return shared


def _labels(config: ScoreConfig, shared: _Shared) -> list[str]:
    labels = []
    if shared.images is not None and config.dataset == "world":
        labels.append(f"discriminability on the synthetic world with "
                      f"{shared.images.describe()['name']} image features (the paper: COCO-2017 "
                      f"+ DINOv3); not comparable to the paper's values")
    elif shared.images is not None:
        labels.append(f"image features {shared.images.describe()['name']} (the paper: DINOv3)")
    if shared.prompt_source and "world_dense_prompts" in shared.prompt_source:
        labels.append("disentanglement on the world's dense prompts (the paper: DPG-Bench)")
    return labels


def score_encoders(cards: Sequence[EncoderCard], config: ScoreConfig, run_dir: Path,
                   cache: FeatureCache | None, device: str | None = "cpu", batch_size: int = 32,
                   overwrite: bool = False, encoders: dict[str, Any] | None = None,
                   on_result: Callable[[dict[str, Any]], None] | None = None,
                   on_error: Callable[[EncoderCard, EmfBenchError], None] | None = None
                   ) -> list[dict[str, Any]]:
    """Score each card; returns the scores.json contents (fresh or reused) in card order. The
    pool, the image model and the image features are built once and shared by every card.
    `on_error`: a card that fails is passed to it and the others go on (None: raise)."""
    metrics = config.resolved_metrics()
    shared: _Shared | None = None
    results = []
    for card in cards:
        folder = Path(run_dir) / "encoders" / card.name
        previous = _previous(folder, card, config)
        if previous is not None and not overwrite:
            previous["reused"] = True
            results.append(previous)
            if on_result:
                on_result(previous)
            continue
        if shared is None:
            shared = _prepare(config, metrics, device)
        try:
            result, tables = _score_one(card, config, metrics, shared, cache, device,
                                        batch_size, (encoders or {}).get(card.name))
        except EmfBenchError as err:
            if on_error is None:
                raise
            on_error(card, err)
            continue
        if distributed.is_main():  # every rank computed the same result; one writes it
            for name, table in tables.items():
                with atomic_path(folder / f"{name}.parquet") as tmp:
                    table.to_parquet(tmp, index=False)
            atomic_write_json(folder / "scores.json", result)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _previous(folder: Path, card: EncoderCard, config: ScoreConfig) -> dict[str, Any] | None:
    file = folder / "scores.json"
    if not file.exists():
        return None
    try:
        old = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # recompute over a damaged file
    if not isinstance(old, dict):
        return None
    from emf_bench.text.registry import weights_signature

    same = (old.get("scores_version") == SCORES_VERSION and old.get("config") == config.to_dict()
            and old.get("fingerprint") == card.fingerprint(weights_signature(card)))
    return old if same else None


def _score_one(card: EncoderCard, config: ScoreConfig, metrics: tuple[str, ...], shared: _Shared,
               cache: FeatureCache | None, device: str | None, batch_size: int, encoder
               ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    start = time.perf_counter()
    out: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    truncation: dict[str, dict[str, int]] = {}
    encoding = {"computed": 0, "cached": 0, "seconds": 0.0}
    fingerprint = weights = None

    def encode(texts: list[str], what: str):
        nonlocal fingerprint, weights
        got = encode_texts(card, texts, cache, device=device, batch_size=batch_size,
                           encoder=encoder)
        fingerprint, weights = got.fingerprint, got.weights
        encoding["computed"] += got.computed
        encoding["cached"] += got.cached
        encoding["seconds"] += got.seconds
        truncation[what] = {"texts": len(texts), "truncated": int(got.truncated.sum())}
        return got.pooled

    def not_applicable(metric: str, err: UnsupportedText) -> None:
        out[metric] = {"score": None, "not_applicable": str(err)}

    if {"discriminability", "recall"} & set(metrics):
        try:
            text = encode(shared.pool.captions, "pool captions")
        except UnsupportedText as err:
            for metric in ("discriminability", "recall"):
                if metric in metrics:
                    not_applicable(metric, err)
            text = None
        if text is not None and "discriminability" in metrics:
            params = DiscriminabilityParams(config.k, config.n_queries, config.seed)
            out["discriminability"], tables["discriminability"] = discriminability(
                text, shared.pool, shared.images, params)
        if text is not None and "recall" in metrics:
            n = min(config.recall_items, len(shared.pool))
            items = np.sort(np.random.default_rng([config.seed, 3]).choice(
                len(shared.pool), n, replace=False))
            out["recall"] = crossmodal_recall(text[items],
                                              shared.images.features(shared.pool, items),
                                              shared.pool.groups[items], config.seed)
            out["recall"]["params"]["image_features"] = shared.images.describe()
    if "disentanglement" in metrics:
        rows = shared.prompts
        try:
            full = encode(rows["prompt"].tolist(), "prompts")
            short = encode(rows["shortened"].tolist(), "shortened prompts")
            out["disentanglement"], tables["disentanglement"] = disentanglement(
                full, short, rows, DisentanglementParams(config.fraction, config.seed),
                shared.prompt_source)
        except UnsupportedText as err:
            not_applicable("disentanglement", err)
    if "minimal-pairs" in metrics:
        rows = shared.pairs
        try:
            out["minimal_pairs"], tables["minimal_pairs"] = minimal_pairs(
                encode(rows["query"].tolist(), "minimal-pair queries"),
                encode(rows["correct"].tolist(), "minimal-pair captions"),
                encode(rows["foil"].tolist(), "minimal-pair foils"), rows)
        except UnsupportedText as err:
            not_applicable("minimal_pairs", err)
    from emf_bench.text.registry import weights_signature

    reference = paper_reference()["encoders"].get(card.paper_reference or "")
    result = {
        "scores_version": SCORES_VERSION,
        "encoder": card.name,
        "card": card.to_dict(),
        "card_source": card.source,
        "fingerprint": fingerprint,
        "weights": weights,
        "config": config.to_dict(),
        "metrics": out,
        "labels": _labels(config, shared),
        "truncation": truncation,
        "encoding": {**encoding, "device": str(device), "batch_size": batch_size,
                     "dtype": card.dtype},
        "seconds": time.perf_counter() - start,
        "paper_reference": {**reference, "label": "paper reference (COCO-2017 + DINOv3, "
                            "DPG-Bench); never a measurement of this run"} if reference else None,
        # after loading: a Hub model's weights are its resolved snapshot commit by now
        "provenance": provenance(seed=config.seed, device=str(device),
                                 models={card.name: weights_signature(card)}),
    }
    return result, tables
