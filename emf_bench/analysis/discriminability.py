"""Discriminability: do similar captions retrieve similar images? (EMF paper, Table 1)

The published protocol: draw queries from a pool of image-caption pairs; for each query caption
retrieve the top-k most similar *captions* of the pool by cosine of mean-pooled text features
(the query itself excluded); score each query by the mean cosine between its image's features
and the retrieved captions' images' features; average over queries. Higher is better. The
paper uses COCO-2017 train (118k pairs, first caption per image), 1,000 queries, k = 2 and DINO
image features; every one of those is a recorded parameter here.

Also reported: the random-retrieval baseline (k random items per query, same image features),
which is what an encoder that carries no information scores in expectation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from emf_bench.analysis.retrieval import topk_cosine


@dataclass(frozen=True)
class DiscriminabilityParams:
    k: int = 2
    n_queries: int = 1000
    seed: int = 0
    exclude_query: bool = True


def discriminability(text: torch.Tensor, pool, images, params: DiscriminabilityParams
                     ) -> tuple[dict[str, Any], pd.DataFrame]:
    """`text`: (N, D) pooled caption features of `pool`; `images`: an image-feature backend."""
    n = len(pool)
    rng = np.random.default_rng(params.seed)
    n_queries = min(params.n_queries, n)
    queries = np.sort(rng.choice(n, n_queries, replace=False))
    exclude = queries if params.exclude_query else None
    retrieved, text_sim = topk_cosine(text[queries], text, params.k, exclude=exclude,
                                      seed=params.seed)
    # A random-retrieval baseline over the same queries: k items drawn uniformly (query excluded).
    shift = rng.integers(1, n, size=(n_queries, params.k))
    random_items = (queries[:, None] + shift) % n
    needed = np.unique(np.concatenate([queries, retrieved.ravel(), random_items.ravel()]))
    feats = images.features(pool, needed)
    row_of = {int(i): r for r, i in enumerate(needed)}

    def sims(items: np.ndarray) -> np.ndarray:
        q = feats[[row_of[int(i)] for i in queries]]
        other = feats[np.vectorize(row_of.get)(items)]  # (Q, k, D)
        return np.einsum("qd,qkd->qk", q, other)

    image_sim = sims(retrieved)
    baseline = sims(random_items)
    per_query = image_sim.mean(axis=1)
    rows = pd.DataFrame({
        "query": queries, "caption": [pool.captions[i] for i in queries],
        "retrieved": list(retrieved), "retrieved_captions":
            [[pool.captions[j] for j in r] for r in retrieved],
        "text_similarity": list(text_sim), "image_similarity": list(image_sim),
        "score": per_query, "same_group": [
            float(np.mean(pool.groups[r] == pool.groups[q])) for q, r in zip(
                queries, retrieved, strict=True)],
    })
    summary = {
        "score": float(per_query.mean()),
        "std_error": float(per_query.std(ddof=1) / np.sqrt(n_queries)) if n_queries > 1 else None,
        "random_baseline": float(baseline.mean()),
        "same_group_rate": float(rows["same_group"].mean()),
        "params": {**asdict(params), "n_queries": n_queries, "pool": pool.describe(),
                   "image_features": images.describe()},
        "protocol": "EMF paper Table 1 (text-to-text retrieval, image-feature similarity)",
    }
    return summary, rows
