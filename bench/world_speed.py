"""Throughput of the synthetic world: scene sampling + rendering, the exact detector, the oracle.

    python bench/world_speed.py [--n 2000]

Prints one markdown table row per measurement (median of 3 repeats) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from emf_bench.world import World, WorldConfig, parse
from emf_bench.world.palette import COLORS


def timed(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    rows = []
    for label, config in [("default (32px, 3 shapes, 4 colours)", WorldConfig()),
                          ("extended (48px, 6 shapes, 10 colours)",
                           WorldConfig(canvas=48, shapes=("circle", "square", "triangle",
                                                          "diamond", "cross", "ring"),
                                       colors=tuple(COLORS)))]:
        world = World(config)
        train = world.training_set(n, seed=0)
        seconds = timed(lambda train=train: [train.image(i) for i in range(n)])
        rows.append((label, "training example (sample + render)", n / seconds))
        images = [train.image(i) for i in range(n)]
        detector = world.detector()
        seconds = timed(lambda d=detector, imgs=images: [d.detect(im) for im in imgs])
        rows.append((label, f"exact detector, {config.canvas}px", n / seconds))
        big = [train.image(i, 128) for i in range(n // 10)]
        seconds = timed(lambda d=detector, imgs=big: [d.detect(im) for im in imgs])
        rows.append((label, "exact detector, 128px", len(big) / seconds))
    world = World()
    suite = world.dense_suite()
    rng = np.random.default_rng(0)
    items = []
    for item_id, prompt in suite.prompts.items():
        questions = [r["question_natural_language"] for r in suite.questions
                     if r["item_id"] == item_id]
        items.append((world.render(world.sample_scene(parse(prompt), rng)), questions))
    oracle = world.oracle()
    seconds = timed(lambda: [oracle.answer(im, qs) for im, qs in items])
    rows.append(("default", "oracle VQA, one tile with all its questions", len(items) / seconds))
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}")
    print("| world | operation | items/s |")
    print("|---|---|---|")
    for label, op, rate in rows:
        print(f"| {label} | {op} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
