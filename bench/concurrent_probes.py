"""Several probes trained side by side on one device, then scored together on world-GenEval.

    python bench/concurrent_probes.py --out DIR [--size gpu-unet] [--batch-size 64]
        [--budget 4m] [--probes ENCODER:OBJECTIVE,...] [--steps 1,2,4,16]
        [--images-per-prompt 16] [--device cuda] [--threads 4] [--train-size 20000]

Default probes: class-label and bag-of-words with MeanFlow, class-label with flow matching.
A small probe does not fill a GPU (kernel launches, not arithmetic, bound its step), so the
probes of a study train faster as concurrent processes than one after another. Each probe is a
real `emf-bench train-probe` in its own run dir under DIR (one shared feature cache), then one
`emf-bench eval` scores them all; the script prints markdown rows for BENCHMARKS.md: steps,
minutes and images/s of each probe, world-GenEval overall at every step count, and position
and color_attr at 1 and 4 steps (exact world detector; probe generators, not official GenEval).
A failed probe stops the script with its log's last lines and exit 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def emf_bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "emf_bench", *args]


def train_all(args, probes: list[tuple[str, str]]) -> dict[str, Path]:
    env = {**os.environ, "EMF_BENCH_QUIET": "1", "OMP_NUM_THREADS": str(args.threads),
           "PYTHONUNBUFFERED": "1"}
    running = {}
    for encoder, objective in probes:
        name = f"{encoder}-{objective}"
        run_dir = args.out / "train" / name
        command = emf_bench("train-probe", "--encoder", encoder, "--objective", objective,
                            "--budget", args.budget, "--size", args.size,
                            "--batch-size", str(args.batch_size), "--device", args.device,
                            "--run-dir", str(run_dir), "--cache-dir", str(args.out / "cache"),
                            "--no-quick-eval", "--resume", "--seed", str(args.seed),
                            "--train-size", str(args.train_size))
        log = open(args.out / f"{name}.log", "w")  # noqa: SIM115 (closed below)
        running[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          env=env), log, run_dir / "probes" / encoder / objective)
    folders = {}
    for name, (process, log, folder) in running.items():
        code = process.wait()
        log.close()
        if code != 0:
            tail = (args.out / f"{name}.log").read_text().splitlines()[-15:]
            sys.exit(f"probe {name} failed (exit {code}):\n" + "\n".join(tail))
        folders[name] = folder
    return folders


def training_row(folder: Path) -> dict:
    """Steps, minutes and images/s as the report's probe table has them."""
    from emf_bench.reporting import collect

    run = folder.parent.parent.parent  # <run>/probes/<encoder>/<objective>
    (row,) = collect.probe_table([p for p in collect.probes(run) if p.folder == folder]
                                 ).to_dict("records")
    return {"steps": row["steps"], "minutes": row["minutes"], "images/s": row["images_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", default="gpu-unet")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--budget", default="4m")
    parser.add_argument("--probes", default="class-label:meanflow,bag-of-words:meanflow,"
                                            "class-label:flow-matching")
    parser.add_argument("--steps", default="1,2,4,16")
    parser.add_argument("--images-per-prompt", type=int, default=16)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-size", type=int, default=20000, help="training scenes")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    probes = [tuple(p.split(":")) for p in args.probes.split(",")]

    start = time.perf_counter()
    folders = train_all(args, probes)
    train_minutes = (time.perf_counter() - start) / 60
    start = time.perf_counter()
    models = [a for folder in folders.values() for a in ("--model", str(folder))]
    subprocess.run(emf_bench("eval", *models, "--benchmark", "world-geneval",
                             "--steps", args.steps, "--images-per-prompt",
                             str(args.images_per_prompt), "--device", args.device,
                             "--run-dir", str(args.out / "eval"),
                             "--cache-dir", str(args.out / "cache"), "--no-save-images",
                             "--seed", str(args.seed)),
                   check=True, env={**os.environ, "EMF_BENCH_QUIET": "1"})
    eval_minutes = (time.perf_counter() - start) / 60
    summary = pd.read_parquet(args.out / "eval" / "evals" / "summary.parquet")
    print_tables(args, folders, summary, train_minutes, eval_minutes)


def print_tables(args, folders, summary, train_minutes, eval_minutes) -> None:
    import torch

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"{os.cpu_count()} CPU cores ({platform.machine()})"
    print(f"\n{len(folders)} probes of `{args.size}` (batch {args.batch_size}, budget "
          f"{args.budget} each) trained side by side on {device}, torch {torch.__version__}, "
          f"in {train_minutes:.1f} min; evaluation {eval_minutes:.1f} min, "
          f"{args.images_per_prompt} images per prompt\n")
    scores = summary.pivot_table(index=["model", "steps"], columns="metric", values="value")
    steps = [int(k) for k in args.steps.split(",")]
    print("| probe | steps | minutes | images/s | "
          + " | ".join(f"{k} step{'s' * (k > 1)}" for k in steps)
          + " | position 1 / 4 | color_attr 1 / 4 |")
    print("|---" * (6 + len(steps)) + "|")
    for name, folder in folders.items():
        t = training_row(folder)
        model = f"probe:{folder.parent.name}/{folder.name}"

        def cell(metric, k, digits=2, model=model):
            return f"{scores.loc[(model, k), metric]:.{digits}f}" \
                if (model, k) in scores.index else "-"

        print(f"| {name} | {t['steps']} | {t['minutes']:.1f} | {t['images/s']:.0f} | "
              + " | ".join(cell("overall", k, 3) for k in steps)
              + f" | {cell('position', 1)} / {cell('position', 4)} | "
              f"{cell('color_attr', 1)} / {cell('color_attr', 4)} |")


if __name__ == "__main__":
    main()
