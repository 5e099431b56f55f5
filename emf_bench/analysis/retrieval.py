"""Top-k retrieval by cosine similarity, in bounded memory, and recall@k.

`topk_cosine` walks the pool in chunks and keeps a running top-k per query, so memory stays at
(query chunk x pool chunk) scores whatever the pool size (118k COCO captions fit easily).
Scores within `tie_tolerance` of the k-th best are numerically equal (float32 dot products
differ by an ulp depending on position); such ties at the cut-off are broken uniformly at random
(seeded), so a degenerate encoder that maps every text to one vector retrieves random items,
i.e. scores chance level, instead of "the first items of the pool".
"""

from __future__ import annotations

import numpy as np
import torch


def normalise(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


def topk_cosine(queries: torch.Tensor, pool: torch.Tensor, k: int,
                exclude: np.ndarray | None = None, query_chunk: int = 1024,
                pool_chunk: int = 16384, seed: int = 0, tie_tolerance: float = 1e-6
                ) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores), each (Q, k), of the k pool items most similar to each query.

    `exclude[q]` (a pool index, or -1) is never returned for query q (the query itself).
    The pool is never copied: its rows' norms (N floats) divide each block of dot products, so
    memory is the features plus one (query chunk x pool chunk) block of scores.
    """
    q_all = normalise(queries)
    pool = pool.float()
    norms = pool.norm(dim=1).clamp(min=1e-12)
    n = pool.shape[0]
    if k + (exclude is not None) > n:
        raise ValueError(f"top-{k} needs more than {n} pool items")
    keep = k + 1  # one more than asked, to see a tie at the cut-off
    indices = np.zeros((len(q_all), k), dtype=np.int64)
    scores = np.zeros((len(q_all), k), dtype=np.float32)
    generator = torch.Generator().manual_seed(seed)

    def blocks(q: torch.Tensor, ex: torch.Tensor | None):
        """(start, scores of q against pool[start:start + pool_chunk]), query excluded."""
        for ps in range(0, n, pool_chunk):
            s = (q @ pool[ps:ps + pool_chunk].T).div_(norms[ps:ps + pool_chunk])
            if ex is not None:
                local = ex - ps
                inside = (local >= 0) & (local < s.shape[1])
                s[inside.nonzero().squeeze(1), local[inside]] = -2.0
            yield ps, s

    for qs in range(0, len(q_all), query_chunk):
        q = q_all[qs:qs + query_chunk]
        ex = torch.as_tensor(exclude[qs:qs + query_chunk]) if exclude is not None else None
        best_s = torch.full((len(q), 0), -2.0)
        best_i = torch.zeros((len(q), 0), dtype=torch.int64)
        for ps, s in blocks(q, ex):
            top = min(keep, s.shape[1])
            cs, ci = s.topk(top, dim=1)
            best_s, order = torch.cat([best_s, cs], 1).topk(min(keep, best_s.shape[1] + top),
                                                             dim=1)
            best_i = torch.cat([best_i, ci + ps], 1).gather(1, order)
        indices[qs:qs + len(q)] = best_i[:, :k].numpy()
        scores[qs:qs + len(q)] = best_s[:, :k].numpy()
        if best_s.shape[1] <= k:
            continue
        tied = (best_s[:, k - 1] - best_s[:, k] <= tie_tolerance).nonzero().squeeze(1)
        if len(tied):
            i, sc = _break_ties(q[tied], best_s[tied], best_i[tied], k, tie_tolerance,
                                blocks(q[tied], ex[tied] if ex is not None else None),
                                generator)
            indices[qs + tied.numpy()], scores[qs + tied.numpy()] = i, sc
    return indices, scores


def _break_ties(q: torch.Tensor, best_s: torch.Tensor, best_i: torch.Tensor, k: int,
                tolerance: float, blocks, generator: torch.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k for queries whose k-th score is shared with more items than fit.

    Items clearly above the cut-off are already in `best_*` (fewer than k of them); the rest of
    the k places go to tied items chosen uniformly: one pass over the pool keeps, per query, the
    tied items with the largest random keys (a running top-k, so memory stays bounded even when
    every item is tied, as for a constant encoder).
    """
    cutoff = best_s[:, k - 1:k]
    rand_key = torch.full((len(q), 0), -1.0)
    rand_i = torch.zeros((len(q), 0), dtype=torch.int64)
    for ps, s in blocks:
        key = torch.rand(s.shape, generator=generator)
        key[(s - cutoff).abs() > tolerance] = -1.0
        top = min(k, s.shape[1])
        ck, ci = key.topk(top, dim=1)
        rand_key, order = torch.cat([rand_key, ck], 1).topk(min(k, rand_key.shape[1] + top),
                                                             dim=1)
        rand_i = torch.cat([rand_i, ci + ps], 1).gather(1, order)
    out_i = np.zeros((len(q), k), dtype=np.int64)
    out_s = np.zeros((len(q), k), dtype=np.float32)
    for row in range(len(q)):
        sure = best_s[row] > cutoff[row] + tolerance
        chosen_i = best_i[row][sure][:k].tolist()
        chosen_s = best_s[row][sure][:k].tolist()
        for key, item in zip(rand_key[row].tolist(), rand_i[row].tolist(), strict=True):
            if len(chosen_i) == k:
                break
            if key >= 0:
                chosen_i.append(item)
                chosen_s.append(float(cutoff[row]))
        out_i[row], out_s[row] = chosen_i, chosen_s
    return out_i, out_s


def recall_at_k(similarity: torch.Tensor, positives: torch.Tensor, ks: tuple[int, ...]
                ) -> dict[int, float]:
    """CLIP_benchmark semantics: a query (row) is a hit at k if any positive is in its top k."""
    top = similarity.topk(max(ks), dim=1).indices
    hits = positives.gather(1, top)
    return {k: float(hits[:, :k].any(dim=1).float().mean()) for k in ks}
