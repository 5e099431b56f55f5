"""What the GenEval scorer adds on top of reading images and detecting objects.

    python bench/eval_overhead.py [--images-per-prompt 4] [--repeats 3]

Exports the world-GenEval suite's ground truth (official layout), then times (a) decoding every
PNG and running the exact detector on it, and (b) a full `emf-bench eval`-equivalent step sweep
over the same folder (reading, detection, GenEval's rules, result rows, chunk files, summary).
Requirement: rule evaluation and bookkeeping add at most 10% to (a).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from emf_bench.evaluation.benchmarks import Scorer, load_benchmark
from emf_bench.evaluation.detectors import load_detector
from emf_bench.evaluation.runner import EvalSettings, StepSweep
from emf_bench.evaluation.world_export import export_world_suites
from emf_bench.generators.folder import FolderGenerator
from emf_bench.images import read_image
from emf_bench.world import World


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images-per-prompt", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "suites"
        root.mkdir()
        export_world_suites(World(), root, images_per_prompt=args.images_per_prompt)
        images = sorted((root / "geneval/images").glob("*/samples/*.png"))
        detector = load_detector("world-exact")
        suite = load_benchmark("world-geneval")

        def bare() -> None:
            for file in images:
                detector.detect(read_image(file))

        def sweep(i: int) -> None:
            StepSweep(FolderGenerator(root / "geneval/images", "truth"), suite,
                      Scorer(detector=detector), Path(tmp) / f"run-{i}",
                      EvalSettings()).run([0])

        bare_times, sweep_times = [], []
        for i in range(args.repeats):
            start = time.perf_counter()
            bare()
            bare_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            sweep(i)
            sweep_times.append(time.perf_counter() - start)
    a, b = statistics.median(bare_times), statistics.median(sweep_times)
    print(f"# {len(images)} images, {platform.machine()}, median of {args.repeats}")
    print("| step | seconds | images/s |")
    print("|---|---|---|")
    print(f"| decode + exact detector | {a:.2f} | {len(images) / a:.0f} |")
    print(f"| full scoring (rules, rows, chunks, summary) | {b:.2f} | {len(images) / b:.0f} |")
    print(f"| overhead of rules and bookkeeping | {100 * (b - a) / a:.1f}% | - |")


if __name__ == "__main__":
    main()
