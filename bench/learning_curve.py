"""Learning curves of the CPU probe: world-GenEval at 1/2/4 steps against training minutes.

    python bench/learning_curve.py [--encoders class-label,minilm] [--budget 4m] [--every 60]
                                   [--out reports/bench/learning-curve]

For each encoder a MeanFlow probe (and for the first one a flow-matching probe of the same
budget) trains on the default world; every `--every` seconds of training its EMA weights are
scored on world-GenEval (exact detector, 4 images per prompt) at 1, 2 and 4 steps, with and
without guidance. Writes curve.csv and curve.png under --out and prints markdown for
BENCHMARKS.md. Evaluation time is not training time.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from emf_bench.evaluation.world_scores import world_geneval
from emf_bench.generators.probe import ProbeGenerator
from emf_bench.probe.trainer import ProbeTrainer, TrainConfig
from emf_bench.text.cache import FeatureCache
from emf_bench.text.registry import EncoderRegistry
from emf_bench.world import World

TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


def curve(encoder: str, objective: str, budget: str, every: float, out: Path,
          guidances: tuple[float, ...], cache) -> list[dict]:
    world = World()
    card = EncoderRegistry.load([]).card(encoder)
    trainer = ProbeTrainer(card, TrainConfig(objective=objective, budget=budget), world,
                           out / "probes" / encoder / objective, cache)
    rows: list[dict] = []

    def snapshot(step: int, seconds: float, ema: torch.nn.Module) -> None:
        generator = ProbeGenerator.from_model(ema, card, trainer.stats, objective, cache,
                                              step=step, train=trainer.config.to_dict())
        for guidance in guidances:
            for k, s in world_geneval(generator, world, (1, 2, 4), guidance=guidance).items():
                rows.append({"encoder": encoder, "objective": objective, "step": step,
                             "minutes": round(seconds / 60, 2), "guidance": guidance,
                             "steps": k, "overall": s["overall"], **s["tasks"]})
        print(f"{encoder} {objective} {seconds / 60:.1f} min (step {step}) done", flush=True)

    trainer.train(overwrite=True, snapshot=(every, snapshot))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoders", default="class-label,minilm")
    parser.add_argument("--budget", default="4m")
    parser.add_argument("--every", type=float, default=60.0)
    parser.add_argument("--guidance", default="1,2")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/learning-curve"))
    args = parser.parse_args()
    encoders = args.encoders.split(",")
    guidances = tuple(float(g) for g in args.guidance.split(","))
    cache = FeatureCache(args.out / "feature-cache")
    start = time.perf_counter()
    rows = []
    for encoder in encoders:
        rows += curve(encoder, "meanflow", args.budget, args.every, args.out, guidances, cache)
    rows += curve(encoders[0], "flow-matching", args.budget, args.every, args.out, guidances,
                  cache)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "curve.csv", index=False)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = max(guidances)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), dpi=110, sharey=True)
    for ax, k in zip(axes, (1, 2, 4), strict=True):
        part = table[(table["steps"] == k) & (table["guidance"] == best)]
        for (encoder, objective), rows_ in part.groupby(["encoder", "objective"]):
            ax.plot(rows_["minutes"], rows_["overall"], marker="o",
                    label=f"{encoder} ({objective})")
        ax.set(title=f"{k} step{'s' if k > 1 else ''}, guidance {best:g}",
               xlabel="training minutes (2 CPU cores)")
    axes[0].set_ylabel("world-GenEval overall (world-exact)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "curve.png")

    print(f"\n# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; wall time {(time.perf_counter() - start) / 60:.1f} min")
    print("| encoder | objective | minutes | guidance | steps | overall | "
          + " | ".join(TASKS) + " |")
    print("|" + "---|" * (6 + len(TASKS)))
    for r in rows:
        print(f"| {r['encoder']} | {r['objective']} | {r['minutes']:.1f} | {r['guidance']:g} | "
              f"{r['steps']} | {r['overall']:.3f} | "
              + " | ".join(f"{r.get(t, float('nan')):.2f}" for t in TASKS) + " |")


if __name__ == "__main__":
    main()
