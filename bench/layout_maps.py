"""Whether a probe's prompt decides where objects go: class-label against bag-of-words on
position, with and without the U-Net's layout maps.

    python bench/layout_maps.py [--tasks position] [--budget 1450steps] [--per-prompt 16]
                                [--encoders class-label,bag-of-words] [--out DIR]

Trains MeanFlow probes (defaults otherwise) on the world's training scenes of `--tasks` only,
once with layout maps (the `cpu-layout` preset) and once without (the `cpu` preset), and
scores world-GenEval position at 1, 4 and 16 steps (exact detector, no guidance). bag-of-words
cannot tell "a circle left of a square" from "a square left of a circle" (the same words), so
a probe that places objects by the prompt separates the two encoders. Prints markdown for
BENCHMARKS.md. Runs are step-budgeted; probes already trained in --out are reused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emf_bench.evaluation.world_scores import world_geneval
from emf_bench.generators.probe import ProbeGenerator
from emf_bench.probe.trainer import ProbeTrainer, TrainConfig
from emf_bench.text.cache import FeatureCache
from emf_bench.text.registry import EncoderRegistry
from emf_bench.world import World


class TaskWorld(World):
    """The default world whose training set holds only some tasks."""

    def __init__(self, tasks: tuple[str, ...]):
        super().__init__()
        self.tasks = tasks

    def training_set(self, size, seed=0, tasks=None):
        return super().training_set(size, seed, tasks or self.tasks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="position")
    parser.add_argument("--budget", default="1450steps")
    parser.add_argument("--per-prompt", type=int, default=16)
    parser.add_argument("--encoders", default="class-label,bag-of-words")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/layout-maps"))
    args = parser.parse_args()
    world = TaskWorld(tuple(args.tasks.split(",")))
    cache = FeatureCache(args.out / "cache")
    registry = EncoderRegistry.load([])
    print(f"Trained on {args.tasks} only, {args.budget}; world-GenEval position, "
          f"{args.per_prompt} images per prompt, no guidance.\n")
    print("| encoder | layout maps | 1 step | 4 steps | 16 steps |")
    print("|---|---|---|---|---|")
    for size in ("cpu-layout", "cpu"):
        for encoder in args.encoders.split(","):
            folder = args.out / f"{encoder}-{size}"
            ProbeTrainer(registry.card(encoder), TrainConfig(budget=args.budget, size=size),
                         world, folder, cache).train()
            scores = world_geneval(ProbeGenerator(folder, cache=cache), world, (1, 4, 16),
                                   per_prompt=args.per_prompt, guidance=1.0,
                                   tasks=("position",))
            row = " | ".join(f"{scores[k]['overall']:.3f}" for k in (1, 4, 16))
            print(f"| {encoder} | {'yes' if size == 'cpu-layout' else 'no'} | {row} |", flush=True)


if __name__ == "__main__":
    main()
