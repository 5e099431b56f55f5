"""How far a probe's 1-step world-GenEval score is below its 4-step score, measured precisely.

    python bench/one_step_gap.py PROBE_DIR [PROBE_DIR ...] [--per-prompt 16] [--cache-dir DIR]
                                 [--tasks]

`train-probe` prints world-GenEval with 4 images per prompt, whose 1-to-4-step gap moves by
about 0.05 between draws; 16 images per prompt halve that. Prints one markdown row per probe
(1 step, 4 steps, gap, and the 1-step single_object and colors scores) for BENCHMARKS.md;
`--tasks` adds a second table with every task's score at 1 and 4 steps (where the gap is).
No guidance (one network evaluation per step); the world-exact detector.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emf_bench.evaluation.world_scores import world_geneval
from emf_bench.generators.probe import ProbeGenerator
from emf_bench.text.cache import FeatureCache
from emf_bench.world import World


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("probes", nargs="+", type=Path)
    parser.add_argument("--per-prompt", type=int, default=16)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--tasks", action="store_true", help="also print every task's scores")
    args = parser.parse_args()
    world = World()
    cache = FeatureCache(args.cache_dir)
    print("| probe | 1 step | 4 steps | gap | 1 step: single_object | 1 step: colors |")
    print("|---|---|---|---|---|---|")
    by_task = []
    for folder in args.probes:
        generator = ProbeGenerator(folder, cache=cache)
        scores = world_geneval(generator, world, (1, 4), per_prompt=args.per_prompt,
                               guidance=1.0)
        one, four = scores[1]["overall"], scores[4]["overall"]
        tasks = scores[1]["tasks"]
        print(f"| {folder} | {one:.3f} | {four:.3f} | {four - one:.3f} | "
              f"{tasks['single_object']:.2f} | {tasks['colors']:.2f} |", flush=True)
        by_task += [(folder, steps, scores[steps]["tasks"]) for steps in (1, 4)]
    if args.tasks:
        names = list(by_task[0][2])
        print(f"\n| probe | steps | {' | '.join(names)} |\n|---|---|{'---|' * len(names)}")
        for folder, steps, tasks in by_task:
            print(f"| {folder} | {steps} | " + " | ".join(f"{tasks[n]:.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
