"""Disentanglement: does a prompt stay close to a shortened version of itself? (EMF Table 2)

The published protocol: for every DPG-Bench prompt remove random portions of the text (a
subsequence), encode both with mean pooling and average the cosine similarity over prompts.
Unspecified in the paper and recorded here: the unit removed (sentences, else clauses, else
words), the fraction removed (uniform in 20-50%, at least one unit, at least one kept), one
seeded ablation per prompt.

Extra (labelled so): the mean-centred variant. Mean-pooled LLM states are strongly anisotropic,
which pushes every cosine toward 1; subtracting the mean feature over all full and shortened
prompts first shows how much of the similarity is the prompt's own.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

_SENTENCES = re.compile(r"(?<=[.!?;])\s+")
_CLAUSES = re.compile(r"\s*,\s*|\s*;\s*|\s+(?:and|while|with|where)\s+")


@dataclass(frozen=True)
class DisentanglementParams:
    fraction: tuple[float, float] = (0.2, 0.5)
    seed: int = 0
    units: tuple[str, ...] = field(default=("sentence", "clause", "word"))


def _units(text: str) -> tuple[str, list[str]]:
    for unit, pattern in (("sentence", _SENTENCES), ("clause", _CLAUSES)):
        parts = [p for p in pattern.split(text.strip()) if p.strip()]
        if len(parts) >= 2:
            return unit, parts
    return "word", text.split()


def ablate(text: str, rng: np.random.Generator, fraction: tuple[float, float] = (0.2, 0.5)
           ) -> tuple[str, str, int, int]:
    """(shortened text, unit, units removed, units in total): a subsequence of `text`."""
    unit, parts = _units(text)
    if len(parts) < 2:
        return text, unit, 0, len(parts)
    share = rng.uniform(*fraction)
    remove = int(np.clip(round(share * len(parts)), 1, len(parts) - 1))
    drop = set(rng.choice(len(parts), remove, replace=False).tolist())
    kept = [p for i, p in enumerate(parts) if i not in drop]
    return " ".join(kept), unit, remove, len(parts)


def ablate_prompts(prompts: dict[str, str], params: DisentanglementParams) -> pd.DataFrame:
    rows = []
    for n, (item_id, text) in enumerate(prompts.items()):
        short, unit, removed, total = ablate(text, np.random.default_rng([params.seed, n]),
                                             params.fraction)
        rows.append({"item_id": item_id, "prompt": text, "shortened": short, "unit": unit,
                     "removed": removed, "units": total})
    return pd.DataFrame(rows)


def disentanglement(full: torch.Tensor, short: torch.Tensor, rows: pd.DataFrame,
                    params: DisentanglementParams, source: dict[str, Any]
                    ) -> tuple[dict[str, Any], pd.DataFrame]:
    """`full`, `short`: (P, D) pooled features of the prompts and their shortened versions."""
    cos = torch.nn.functional.cosine_similarity(full.float(), short.float(), dim=-1).numpy()
    mean = torch.cat([full, short]).float().mean(dim=0, keepdim=True)
    centred = torch.nn.functional.cosine_similarity(full.float() - mean, short.float() - mean,
                                                    dim=-1).numpy()
    rows = rows.assign(similarity=cos, centred_similarity=centred)
    summary = {
        "score": float(cos.mean()),
        "std_error": float(cos.std(ddof=1) / np.sqrt(len(cos))) if len(cos) > 1 else None,
        "centred": {"score": float(centred.mean()), "label": "extra (not the paper's metric)"},
        "params": {**asdict(params), "prompts": source,
                   "units_used": rows["unit"].value_counts().to_dict()},
        "protocol": "EMF paper Table 2 (subsequence cosine similarity)",
    }
    return summary, rows
