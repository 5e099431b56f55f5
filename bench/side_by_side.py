"""Probes side by side on a CPU: one probe on every core against one probe per core.

The study's default `--jobs` on a CPU is one probe per physical core, each on one intra-op
thread (emf_bench/side_by_side.py). This script measures why: it times optimizer steps of both
objectives and a sampling forward of the study's probe (`probe/speed.py`'s measurement: fixed
batches, the median of `--steps` after one untimed) in one process on all the cores, then in one
spawned process per core at the same time, and prints the images per second of the machine in
each arrangement.

    python bench/side_by_side.py [--size cpu-layout] [--steps 20] [--precision auto]
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform

import torch

from emf_bench.probe.precision import physical_cores, resolve_precision
from emf_bench.probe.speed import step_seconds
from emf_bench.probe.trainer import TrainConfig

KINDS = ("flow-matching", "meanflow", "sample")


def measure(size: str, precision: str, steps: int, threads: int, barrier=None
            ) -> dict[str, float]:
    torch.set_num_threads(threads)
    if barrier is not None:
        barrier.wait()  # every worker starts together: they share the machine while timed
    config = TrainConfig(size=size, objective="meanflow")
    return step_seconds(config, 256, torch.device("cpu"), precision, steps)


def _worker(args) -> dict[str, float]:
    return measure(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="cpu-layout")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    cores = physical_cores()
    precision = resolve_precision(args.precision, torch.device("cpu"))
    batch = TrainConfig.batch_size
    print(f"# {args.size} preset, batch {batch}, {precision}, torch {torch.__version__}, "
          f"{platform.machine()}, {cores} physical cores; median of {args.steps} steps")
    alone = measure(args.size, precision, args.steps, cores)
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(cores)
    with context.Pool(cores) as pool:
        side = pool.map(_worker, [(args.size, precision, args.steps, 1, barrier)] * cores)
    print("| arrangement | flow matching images/s | MeanFlow images/s | sampling images/s |")
    print("|---|---|---|---|")

    def rates(per_process: list[dict[str, float]]) -> list[float]:
        return [sum((1 if kind == "sample" else batch) / p[kind] for p in per_process)
                for kind in KINDS]

    one, many = rates([alone]), rates(side)
    print(f"| one process, {cores} threads | " + " | ".join(f"{r:.0f}" for r in one) + " |")
    print(f"| {cores} processes side by side, 1 thread each | "
          + " | ".join(f"{r:.0f}" for r in many) + " |")
    print("| side by side / one process | "
          + " | ".join(f"{m / o:.2f}x" for m, o in zip(many, one, strict=True)) + " |")


if __name__ == "__main__":
    main()
