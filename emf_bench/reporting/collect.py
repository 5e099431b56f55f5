"""Everything a run directory holds, as pandas tables: encoder scores, probes, evaluations, and
the study that ties them (bootstrap intervals over prompts, rank correlations).

Every reader tolerates missing pieces (a partial run gives empty tables and a note saying what
is missing); corrupt files are one clear error naming the file.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emf_bench.errors import EmfBenchError

ENCODER_COLUMNS = ["encoder", "backend", "discriminability", "disc_se", "chance",
                   "disentanglement", "centred_extra", "minimal_pairs_extra", "recall_t2i_r1_extra",
                   "paper_discriminability", "paper_disentanglement", "image_features"]


REWRITE = "run the command that wrote it again (finished work is reused) to rewrite it"


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise EmfBenchError(f"corrupt {path}: {err}; {REWRITE}") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise EmfBenchError(f"corrupt {path}: {err}; {REWRITE}") from None


def encoder_table(run: Path) -> pd.DataFrame:
    from emf_bench.resources import paper_reference

    published = paper_reference()["encoders"]
    records = []
    for file in sorted(Path(run).glob("encoders/*/scores.json")):
        s = read_json(file)
        m = s.get("metrics", {})
        disc, dis = m.get("discriminability") or {}, m.get("disentanglement") or {}
        recall = ((m.get("recall") or {}).get("text_to_image") or {}).get("R@1")
        paper = published.get((s.get("card") or {}).get("paper_reference") or "", {})
        records.append({
            "encoder": s["encoder"], "backend": (s.get("card") or {}).get("backend"),
            "discriminability": disc.get("score"), "disc_se": disc.get("std_error"),
            "chance": disc.get("random_baseline"), "disentanglement": dis.get("score"),
            "centred_extra": (dis.get("centred") or {}).get("score")
            if isinstance(dis.get("centred"), dict) else dis.get("centred"),
            "minimal_pairs_extra": (m.get("minimal_pairs") or {}).get("score"),
            "recall_t2i_r1_extra": recall,
            "paper_discriminability": paper.get("discriminability"),
            "paper_disentanglement": paper.get("disentanglement"),
            "image_features": ((disc.get("params") or {}).get("image_features") or {}).get("name"),
        })
    return pd.DataFrame.from_records(records, columns=ENCODER_COLUMNS)


@dataclass
class Probe:
    encoder: str
    objective: str
    folder: Path
    state: dict[str, Any]
    log: pd.DataFrame


def probes(run: Path) -> list[Probe]:
    out = []
    for file in sorted(Path(run).glob("probes/*/*/probe.json")):
        state = read_json(file)
        log_file = file.parent / "train_log.csv"
        try:
            log = pd.read_csv(log_file) if log_file.exists() else pd.DataFrame()
        except (OSError, ValueError) as err:  # pandas' parser errors are ValueErrors
            raise EmfBenchError(f"corrupt {log_file}: {str(err).splitlines()[0]}; delete it "
                                f"(the probe keeps its checkpoints) and rebuild the report"
                                ) from None
        out.append(Probe(file.parent.parent.name, file.parent.name, file.parent, state, log))
    return out


def probe_table(items: list[Probe]) -> pd.DataFrame:
    from emf_bench.probe.checkpoint import trained_guidance

    records = [{"encoder": p.encoder, "objective": p.objective, "steps": p.state.get("step"),
                "minutes": round(p.state.get("seconds", 0) / 60, 2),
                "images": p.state.get("images"), "budget": p.state["train"].get("budget"),
                "size": p.state["train"].get("size"),
                "batch": p.state["train"].get("batch_size"),
                "trained_guidance": trained_guidance(p.state["train"]),
                "curriculum": curriculum(p.state["train"]),
                "final_loss": float(p.log["loss"].iloc[-1]) if len(p.log) else None,
                "images_per_s": float(p.log["images_per_s"].tail(20).median())
                if len(p.log) else None}
               for p in items]
    return pd.DataFrame.from_records(records, columns=[
        "encoder", "objective", "steps", "minutes", "images", "budget", "size", "batch",
        "trained_guidance", "curriculum", "final_loss", "images_per_s"])


def curriculum(train: dict[str, Any]) -> str:
    """A probe's curriculum in words: "position first (50%)", or "none"."""
    tasks, share = train.get("first_tasks") or [], train.get("first_share") or 0.0
    return f"{', '.join(tasks)} first ({share:.0%})" if tasks and share else "none"


@dataclass
class Evaluation:
    model: str
    benchmark: str
    steps: int
    folder: Path
    summary: dict[str, Any]
    generator: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def rows(self) -> list[dict[str, Any]]:
        file = self.folder / "results.jsonl"
        return read_jsonl(file) if file.exists() else []

    @functools.cached_property
    def intervals(self) -> dict[str, Any]:
        """Bootstrap intervals, as the benchmark computes them ({} where it has none)."""
        from emf_bench.evaluation.benchmarks import benchmark_class

        return benchmark_class(self.benchmark).intervals(self.rows)


def evaluations(run: Path) -> list[Evaluation]:
    out = []
    for file in sorted(Path(run).glob("evals/*/*/steps-*/summary.json")):
        s = read_json(file)
        out.append(Evaluation(s["model"], s["benchmark"], int(s["steps"]), file.parent, s,
                              s.get("generator", {})))
    return sorted(out, key=lambda e: (e.model, e.benchmark, e.steps))


def study_table(run: Path, encoders: pd.DataFrame, evals: list[Evaluation],
                benchmark: str = "world-geneval") -> pd.DataFrame:
    """Per probe: its encoder's scores and its score at each step count with intervals."""
    records = []
    for e in evals:
        if e.benchmark != benchmark or e.generator.get("kind") != "probe" \
                or e.summary.get("subset"):  # a partial run never stands for the benchmark
            continue
        ci = e.intervals
        enc = encoders[encoders["encoder"] == e.generator.get("encoder")]
        record = {"encoder": e.generator.get("encoder"), "objective": e.generator.get("objective"),
                  "model": e.model, "steps": e.steps, "score": e.summary["overall"],
                  "low": ci.get("low"), "high": ci.get("high"),
                  "discriminability": enc["discriminability"].iloc[0] if len(enc) else None,
                  "disentanglement": enc["disentanglement"].iloc[0] if len(enc) else None}
        for task, t in ci.get("tasks", {}).items():
            record[task] = t["score"]
            record[f"{task}_low"], record[f"{task}_high"] = t["low"], t["high"]
        records.append(record)
    return pd.DataFrame.from_records(records)


def rank_correlation(study: pd.DataFrame, x: str, steps: int = 1,
                     objective: str = "meanflow") -> dict[str, Any] | None:
    """Spearman's rho between an encoder property and the probes' score at `steps`."""
    from scipy.stats import spearmanr

    if study.empty or x not in study:
        return None
    part = study[(study["steps"] == steps) & (study["objective"] == objective)].dropna(
        subset=[x, "score"])
    if len(part) < 3:
        return {"rho": None, "p": None, "n": len(part),
                "note": "fewer than 3 probed encoders: no rank correlation"}
    with warnings.catch_warnings():  # a constant column: answered below, not warned about
        warnings.simplefilter("ignore")
        rho, p = spearmanr(part[x], part["score"])
    if np.isnan(rho):
        return {"rho": None, "p": None, "n": len(part), "note": "a constant column: no rank "
                "correlation"}
    if len(part) <= 8:  # few encoders: the exact permutation p-value, not the t approximation
        p = exact_spearman_p(list(part[x]), list(part["score"]), float(rho))
    return {"rho": float(rho), "p": float(p), "n": len(part), "x": x, "steps": steps}


def exact_spearman_p(x: list[float], y: list[float], rho: float | None = None) -> float:
    """Two-sided p of Spearman's rho over every pairing of the ranks (n <= 8): scipy's exact
    permutation test of |rho| (`rho` is recomputed from the ranks; kept for callers)."""
    from scipy.stats import permutation_test, rankdata

    rx, ry = rankdata(x), rankdata(y)
    a = rx - rx.mean()

    def abs_rho(b: np.ndarray, axis: int = -1) -> np.ndarray:
        b = b - b.mean(axis=axis, keepdims=True)
        denom = np.sqrt((a * a).sum() * (b * b).sum(axis=axis))
        return np.abs(np.where(denom == 0, 0.0, (a * b).sum(axis=axis) /
                               np.where(denom == 0, 1.0, denom)))

    return float(permutation_test((ry,), abs_rho, permutation_type="pairings",
                                  vectorized=True, n_resamples=np.inf,
                                  alternative="greater").pvalue)
