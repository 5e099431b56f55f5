"""Cost of a MeanFlow training step against a flow-matching step of the same probe.

    python bench/probe_speed.py [--size cpu] [--batch-size 32] [--steps 30] [--device cpu]

Both objectives (MeanFlow with either tangent, and with the JVP by torch.func.jvp or by the
U-Net's hand-written rules, `--jvp func|dual`) run in one process on the same model, batches
and (t, r) schedules the trainer uses (EMF's at mid-training: half the samples with r != t; the
JVP is taken for those only). Prints images/s of each, their ratio, and 1-step
sampling throughput, as markdown rows for BENCHMARKS.md. Requirement: a MeanFlow step costs
at most 1.9x a flow-matching step.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from emf_bench.probe.model import build_model, preset
from emf_bench.probe.objectives import Objective, probe_loss
from emf_bench.probe.sampler import MeanFlowSampler
from emf_bench.probe.schedules import TimeSchedule


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cond-dim", type=int, default=139)  # class-label on the default world
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(preset(args.size, cond_dim=args.cond_dim, prediction="x")).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    bs = args.batch_size
    x = (torch.rand(bs, 3, 32, 32, generator=g) * 2 - 1).to(device)
    cond = {"pooled": torch.randn(bs, args.cond_dim, generator=g).to(device), "tokens": None,
            "mask": None}

    variants = {(tangent, jvp): Objective("meanflow", jvp, p=0.5, tangent=tangent)
                for tangent in ("model", "sample") for jvp in ("dual", "func")}
    variants = {"flow-matching": Objective("flow-matching", p=0.5), **variants}
    schedules = {"flow-matching": TimeSchedule.named("flow-matching"),
                 "meanflow": TimeSchedule.named("emf")}

    def step(objective: Objective) -> float:
        t, r = schedules[objective.kind].sample(bs, 0.5, g)
        noise = torch.randn(x.shape, generator=g).to(device)
        start = time.perf_counter()
        loss, _ = probe_loss(model, x, noise, t.to(device), r.to(device), cond, objective)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    # Interleaved (one step of each in turn), so a change in machine load hits all alike.
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(args.steps + 3):
        for name, objective in variants.items():
            seconds = step(objective)
            if i >= 3:
                times[name].append(seconds)
    rate = {name: bs / statistics.median(times[name]) for name in variants}
    fm = rate.pop("flow-matching")
    model.eval()
    noise = torch.randn(256, 3, 32, 32, generator=g).to(device)
    pooled = torch.randn(256, args.cond_dim, generator=g).to(device)
    sampler = MeanFlowSampler()
    sampler.sample(model, noise, pooled, steps=1)
    start = time.perf_counter()
    for _ in range(3):
        sampler.sample(model, noise, pooled, steps=1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    sample_rate = 3 * 256 / (time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"# {args.size} preset ({params:.2f}M parameters), batch {bs}, {args.device}, "
          f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads")
    print("| objective | images/s (training) | cost per image vs flow matching |")
    print("|---|---|---|")
    print(f"| flow matching | {fm:.0f} | 1.00 |")
    for (tangent, jvp), mf in rate.items():
        print(f"| MeanFlow (EMF schedule, 50% r != t), `--tangent {tangent} --jvp {jvp}` | "
              f"{mf:.0f} | {fm / mf:.2f} |")
    print(f"| 1-step sampling (no guidance) | {sample_rate:.0f} | - |")


if __name__ == "__main__":
    main()
