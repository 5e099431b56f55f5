"""Extra encoder metrics, labelled as not the paper's.

- Cross-modal recall@1/5/10, both directions, through a ridge-regression map from pooled text
  features to image features fitted on one half of a pool and evaluated on the other
  (CLIP_benchmark semantics: a hit if any positive, an item of the same group, is in the top k).
- Minimal pairs on the world: a training-style paraphrase of a meaning is the query; the
  candidates are the meaning and a foil differing in exactly one colour, shape, count,
  relation (the same words in another order) or binding (colours swapped between objects). The
  score is how often the encoder ranks the right caption first (ties count one half).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from emf_bench.analysis.retrieval import normalise, recall_at_k
from emf_bench.errors import EmfBenchError
from emf_bench.world.grammar import GENEVAL_PHRASING, realize, sample_phrasing
from emf_bench.world.meaning import Meaning, ObjectGroup, Relation

LABEL = "extra (not the paper's metric)"
KINDS = ("color", "shape", "count", "relation", "binding")


def crossmodal_recall(text: torch.Tensor, images: np.ndarray, groups: np.ndarray, seed: int = 0,
                      ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, Any]:
    """Fit text -> image on a random half, rank on the other half."""
    try:
        from sklearn.linear_model import RidgeCV
    except ImportError:
        raise EmfBenchError("the recall metric needs scikit-learn: pip install "
                            "'emf-bench[recall]'") from None

    n = len(groups)
    order = np.random.default_rng(seed).permutation(n)
    fit, held = order[: n // 2], order[n // 2:]
    x = normalise(text).numpy()
    model = RidgeCV(alphas=np.logspace(-3, 3, 7)).fit(x[fit], images[fit])
    predicted = normalise(torch.as_tensor(model.predict(x[held]), dtype=torch.float32))
    similarity = predicted @ torch.as_tensor(images[held]).T
    positives = torch.as_tensor(groups[held][:, None] == groups[held][None, :])
    ks = tuple(k for k in ks if k <= len(held))
    t2i = recall_at_k(similarity, positives, ks)
    i2t = recall_at_k(similarity.T, positives.T, ks)
    return {"text_to_image": {f"R@{k}": v for k, v in t2i.items()},
            "image_to_text": {f"R@{k}": v for k, v in i2t.items()},
            "params": {"fit_items": len(fit), "eval_items": len(held), "seed": seed,
                       "ridge_alpha": float(model.alpha_), "positives": "same group"},
            "label": LABEL}


def _foil(kind: str, meaning: Meaning, config, rng: np.random.Generator) -> Meaning | None:
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    groups = meaning.groups
    if kind in ("color", "shape") and len(groups) == 1 and groups[0].color and \
            groups[0].count == 1:
        g = groups[0]
        if kind == "color":
            other = pick([c for c in config.colors if c != g.color])
            return Meaning((ObjectGroup(g.shape, other),))
        other = pick([s for s in config.shapes if s != g.shape])
        return Meaning((ObjectGroup(other, g.color),))
    if kind == "count" and len(groups) == 1 and groups[0].count > 1:
        g = groups[0]
        return Meaning((ObjectGroup(g.shape, g.color,
                                    pick([c for c in config.counts if c != g.count])),))
    if kind == "relation" and len(meaning.relations) == 1 and len(groups) == 2:
        rel = meaning.relations[0]  # same words, other order: subject and reference swapped
        return Meaning(groups, (Relation(rel.reference, rel.predicate, rel.subject),))
    if kind == "binding" and len(groups) == 2 and all(g.color for g in groups) and \
            groups[0].color != groups[1].color:
        a, b = groups
        return Meaning((ObjectGroup(a.shape, b.color, a.count), ObjectGroup(b.shape, a.color,
                                                                            b.count)))
    return None


def minimal_pair_items(world, per_kind: int = 200, seed: int = 0) -> pd.DataFrame:
    """Rows of (kind, query, correct, foil) over the world's catalogue, seeded."""
    rng = np.random.default_rng([seed, 7])
    rows = []
    entries = [e for e in world.catalogue if e.task != "dense"]
    for kind in KINDS:
        candidates = [(e, f) for e in entries
                      if (f := _foil(kind, e.meaning, world.config, np.random.default_rng(
                          [seed, e.id, KINDS.index(kind)]))) is not None]
        if not candidates:
            continue
        for n in rng.choice(len(candidates), per_kind, replace=len(candidates) < per_kind):
            entry, foil = candidates[int(n)]
            phrasing = sample_phrasing(rng, "train", len(entry.meaning.groups))
            rows.append({"kind": kind, "meaning_id": entry.id,
                         "query": realize(entry.meaning, phrasing),
                         "correct": realize(entry.meaning, GENEVAL_PHRASING),
                         "foil": realize(foil, GENEVAL_PHRASING)})
    return pd.DataFrame(rows)


def minimal_pairs(query: torch.Tensor, correct: torch.Tensor, foil: torch.Tensor,
                  rows: pd.DataFrame, tie_tolerance: float = 1e-6
                  ) -> tuple[dict[str, Any], pd.DataFrame]:
    q = normalise(query)
    gap = ((q * normalise(correct)).sum(-1) - (q * normalise(foil)).sum(-1)).numpy()
    win = np.where(np.abs(gap) <= tie_tolerance, 0.5, (gap > 0).astype(float))
    rows = rows.assign(margin=gap, win=win)
    by_kind = rows.groupby("kind", sort=False)["win"].mean().to_dict()
    return {"score": float(np.mean(list(by_kind.values()))),
            "by_kind": {k: float(v) for k, v in by_kind.items()},
            "params": {"pairs": len(rows), "ties_count": "one half"},
            "label": LABEL}, rows
