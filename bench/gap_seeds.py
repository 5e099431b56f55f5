"""The 1-to-4-step gap of one recipe over several seeds, the probes trained side by side.

    python bench/gap_seeds.py --out DIR [--seeds 0,1,2,3] [--size cpu] [--batch-size 32]
        [--budget 1450steps] [--encoder class-label] [--images-per-prompt 16]
        [--device cuda] [--threads 2] [--train-size 20000] [--report-only]

One `bench/concurrent_probes.py` per seed (a real `emf-bench train-probe` of a MeanFlow probe,
then `emf-bench eval` on world-GenEval at 1 and 4 steps, no guidance, world-exact detector),
all seeds at once; then one markdown row per seed (overall and counting at 1 and 4 steps, the
gap) and the gap's mean and standard deviation over the seeds. Whether a recipe meets "1 step
within 0.1 of 4 steps" is a question about that distribution, not about one probe. A failed
seed stops the script with exit 1 after the others finish. `--report-only` prints the table
of the seeds under DIR that finished (after an interrupted run, say) without training.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--size", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--budget", default="1450steps")
    parser.add_argument("--encoder", default="class-label")
    parser.add_argument("--images-per-prompt", type=int, default=16)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=20000, help="training scenes")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    failed = [] if args.report_only else train_and_score(args, seeds)
    report(args, seeds, failed)
    if failed:
        sys.exit(f"seeds {failed} failed; their logs are under {args.out}")


def train_and_score(args, seeds: list[int]) -> list[int]:
    """One concurrent_probes.py per seed, all at once; the seeds whose run failed."""
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    running = {}
    for seed in seeds:
        out = args.out / f"seed{seed}"
        command = [sys.executable, str(HERE / "concurrent_probes.py"), "--out", str(out),
                   "--size", args.size, "--batch-size", str(args.batch_size),
                   "--budget", args.budget, "--probes", f"{args.encoder}:meanflow",
                   "--steps", "1,4", "--images-per-prompt", str(args.images_per_prompt),
                   "--device", args.device, "--threads", str(args.threads),
                   "--seed", str(seed), "--train-size", str(args.train_size)]
        out.mkdir(parents=True, exist_ok=True)
        log = open(out / "gap_seeds.log", "w")  # noqa: SIM115 (closed below)
        running[seed] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          env=env), log)
    failed = []
    for seed, (process, log) in running.items():
        if process.wait() != 0:
            failed.append(seed)
        log.close()
    return failed


def report(args, seeds: list[int], failed: list[int]) -> None:
    print(f"{args.encoder} MeanFlow probes, `{args.size}`, batch {args.batch_size}, "
          f"{args.budget}, {args.device}; world-GenEval, {args.images_per_prompt} images per "
          f"prompt, no guidance, world-exact detector\n")
    print("| seed | 1 step | 4 steps | gap | counting 1 / 4 |\n|---|---|---|---|---|")
    gaps = []
    for seed in seeds:
        path = args.out / f"seed{seed}" / "eval" / "evals" / "summary.parquet"
        if seed in failed or not path.exists():
            log = args.out / f"seed{seed}" / "gap_seeds.log"
            print(f"| {seed} | no scores (log: {log}) | | | |")
            continue
        scores = pd.read_parquet(path).set_index(["steps", "metric"])["value"]
        one, four = scores[(1, "overall")], scores[(4, "overall")]
        gaps.append(four - one)
        print(f"| {seed} | {one:.3f} | {four:.3f} | {four - one:.3f} | "
              f"{scores[(1, 'counting')]:.2f} / {scores[(4, 'counting')]:.2f} |")
    if len(gaps) > 1:
        print(f"\ngap over {len(gaps)} seeds: mean {statistics.mean(gaps):.3f}, standard "
              f"deviation {statistics.stdev(gaps):.3f}, {sum(g <= 0.1 for g in gaps)} of "
              f"{len(gaps)} within 0.1")


if __name__ == "__main__":
    main()
