"""`train-probe --data` against the built-in world: the world's own training scenes, exported as
an `imagefolder` with captions, train a probe through --data; it is scored on world-GenEval next
to a probe trained on the world with the same steps and seed.

    python bench/data_equivalence.py [--steps 600] [--train-size 20000] [--encoder bag-of-words]

Prints a markdown table for BENCHMARKS.md: world-GenEval overall at 1 and 4 steps with 95%
bootstrap intervals for both probes, whether their weights are identical, and the seconds each
spent before its first optimizer step (rendering scenes against reading, hashing and preparing
PNG files).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

from emf_bench.cli import main as cli
from emf_bench.evaluation.benchmarks.geneval import bootstrap_geneval
from emf_bench.evaluation.world_export import export_training_set
from emf_bench.world import World, WorldConfig


def scores(run_dir: Path, steps: int) -> dict:
    rows = [json.loads(line) for f in run_dir.glob(f"evals/*/world-geneval/steps-{steps}/"
                                                   "results.jsonl")
            for line in f.read_text().splitlines() if line.strip()]
    return bootstrap_geneval(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--encoder", default="bag-of-words")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="emf-data-equivalence-"))
    start = time.perf_counter()
    export_training_set(World(WorldConfig()), root / "folder", args.train_size, seed=0)
    export_seconds = time.perf_counter() - start
    common = ["train-probe", "--encoder", args.encoder, "--budget", f"{args.steps}steps",
              "--train-size", str(args.train_size), "--no-quick-eval", "--cache-dir",
              str(root / "cache")]
    results = {}
    for name, extra in (("world", []), ("--data imagefolder", ["--data", str(root / "folder")])):
        run = root / name.replace(" ", "_").strip("-")
        start = time.perf_counter()
        assert cli([*common, *extra, "--run-dir", str(run)]) == 0
        train_seconds = time.perf_counter() - start
        log = (run / "probes" / args.encoder / "meanflow" / "train_log.csv").read_text()
        loop = float(log.splitlines()[-1].split(",")[1])  # seconds of optimizer steps
        assert cli(["eval", "--model", f"probe:{args.encoder}", "--benchmark", "world-geneval",
                    "--steps", "1,4", "--run-dir", str(run), "--cache-dir",
                    str(root / "cache")]) == 0
        results[name] = {"run": run, "setup": train_seconds - loop,
                         "1": scores(run, 1), "4": scores(run, 4)}
    a, b = (load_file(str(r["run"] / f"probes/{args.encoder}/meanflow/checkpoints/"
                                     f"step-{args.steps:07d}/ema.safetensors"))
            for r in results.values())
    identical = a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"{args.encoder}, {args.steps} steps, {args.train_size} scenes, seed 0; commit "
          f"{commit}, {platform.processor() or platform.machine()}; export of the folder "
          f"{export_seconds:.0f} s\n")
    print("| training data | 1 step | 4 steps | seconds before the first step |")
    print("|---|---|---|---|")
    for name, r in results.items():
        cells = [f"{r[k]['score']:.3f} [{r[k]['low']:.3f}, {r[k]['high']:.3f}]"
                 for k in ("1", "4")]
        print(f"| {name} | {cells[0]} | {cells[1]} | {r['setup']:.0f} |")
    print(f"\nEMA weights identical: {identical}")


if __name__ == "__main__":
    main()
