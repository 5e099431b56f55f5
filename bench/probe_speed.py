"""Training speed of a probe against what the machine can do, in one run.

    python bench/probe_speed.py [--size cpu] [--batch-size 32] [--steps 20] [--device cpu]
                                [--tangents]

For float32 and each faster option this machine offers (channels_last; bf16 autocast where the
device does bf16 natively, or with `--emulated`), prints images/s of a
flow-matching step and of the default MeanFlow step (the trainer's: model tangent, hand-written
JVP, guidance trained in), their ratio, the speed-up over float32, the training FLOPs per image
(torch.utils.flop_counter) and the achieved share of the machine's own matmul peak in the same
precision (measured here on 2048x2048 matmuls). `--tangents` adds the tangent and JVP variants
in float32. Steps run interleaved, on fixed batches and a fixed (t, r) draw (half the samples
with r != t, EMF's schedule at mid-training), so load changes and (t, r) draws hit every row
alike. Goals (issue 19): the default path at least 1.5x float32 images/s for both objectives
on a bf16 CPU, and a MeanFlow step at most 1.6x a flow-matching step.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from emf_bench.probe.model import build_model
from emf_bench.probe.objectives import Objective, probe_loss
from emf_bench.probe.precision import autocast, bf16_support
from emf_bench.probe.presets import preset
from emf_bench.probe.sampler import MeanFlowSampler
from emf_bench.probe.schedules import TimeSchedule
from emf_bench.probe.trainer import TrainConfig


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of n x n matmuls in `dtype` (the best of `reps`)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cond-dim", type=int, default=139)  # class-label on the default world
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tangents", action="store_true")
    parser.add_argument("--emulated", action="store_true",
                        help="also time bf16 where the device has no native bf16")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(preset(args.size, cond_dim=args.cond_dim, prediction="x")).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    g = torch.Generator().manual_seed(0)
    bs = args.batch_size
    x = (torch.rand(bs, 3, 32, 32, generator=g) * 2 - 1).to(device)
    noise = torch.randn(x.shape, generator=g).to(device)
    cond = {"pooled": torch.randn(bs, args.cond_dim, generator=g).to(device), "tokens": None,
            "mask": None, "dropped": torch.rand(bs, generator=g).to(device) < 0.1}
    default = TrainConfig()
    times = {"flow-matching": TimeSchedule.named("flow-matching").sample(bs, 0.5, g),
             "meanflow": TimeSchedule.named(default.schedule).sample(bs, 0.5, g)}
    native = bf16_support(device)
    options = [("float32", "nchw"), ("float32", "channels_last")]
    if native or args.emulated:  # emulated bf16 is many times slower than float32
        options += [("bfloat16", "nchw"), ("bfloat16", "channels_last")]
    objectives = {"flow-matching": Objective("flow-matching", p=default.adaptive_p),
                  "meanflow": default.meanflow_objective()}
    if args.tangents:
        for tangent in ("model", "sample"):
            for jvp in ("dual", "func"):
                objectives[f"meanflow --tangent {tangent} --jvp {jvp}"] = Objective(
                    "meanflow", jvp, default.adaptive_p, guidance=default.train_guidance,
                    tangent=tangent)

    def layout(tensor: torch.Tensor, name: str) -> torch.Tensor:
        return tensor.contiguous(memory_format=torch.channels_last) if name != "nchw" else tensor

    def step(name: str, objective: Objective, precision: str, memory: str) -> float:
        t, r = times[objective.kind]
        sync(device)
        start = time.perf_counter()
        with autocast(device, precision):
            loss, _ = probe_loss(model, layout(x, memory), layout(noise, memory), t.to(device),
                                 r.to(device), cond, objective)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)
        return time.perf_counter() - start

    runs = [(name, objective, precision, memory) for precision, memory in options
            for name, objective in objectives.items()
            if not name.startswith("meanflow --") or (precision, memory) == options[0]]
    flops = {}
    for name, objective, _, _ in runs:
        if name not in flops:
            counter = FlopCounterMode(display=False)
            with counter:
                step(name, objective, "float32", "nchw")
            flops[name] = counter.get_total_flops() / bs
    seconds: dict[tuple, list[float]] = {(run[0], run[2], run[3]): [] for run in runs}
    for i in range(args.steps + 2):  # interleaved; the first two rounds warm up
        for name, objective, precision, memory in runs:
            s = step(name, objective, precision, memory)
            if i >= 2:
                seconds[(name, precision, memory)].append(s)
    peaks = {precision: matmul_peak(device, getattr(torch, precision))
             for precision in dict(options)}
    rate = {key: bs / statistics.median(v) for key, v in seconds.items()}

    model.eval()
    sample_noise = torch.randn(256, 3, 32, 32, generator=g).to(device)
    pooled = torch.randn(256, args.cond_dim, generator=g).to(device)
    sampler = MeanFlowSampler()
    sample_rate = {}
    for precision in dict(options):
        with autocast(device, precision):
            sampler.sample(model, sample_noise, pooled, steps=1)
            sync(device)
            start = time.perf_counter()
            for _ in range(3):
                sampler.sample(model, sample_noise, pooled, steps=1)
            sync(device)
        sample_rate[precision] = 3 * 256 / (time.perf_counter() - start)

    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"# {args.size} preset ({params:.2f}M parameters), batch {bs}, {args.device}, "
          f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
          f"native bf16: {native or 'none'}; matmul peak " + ", ".join(
              f"{v:.0f} GFLOP/s {k}" for k, v in peaks.items()))
    print("| precision | layout | objective | images/s | vs float32 nchw | MeanFlow / flow "
          "matching (cost per image) | GFLOP per image | GFLOP/s | share of matmul peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, precision, memory), r in rate.items():
        base = rate[(name, "float32", "nchw")]
        fm = rate.get(("flow-matching", precision, memory))
        ratio = f"{fm / r:.2f}" if name != "flow-matching" and fm else "-"
        achieved = flops[name] * r / 1e9
        print(f"| {precision} | {memory} | {name} | {r:.0f} | {r / base:.2f}x | {ratio} | "
              f"{flops[name] / 1e9:.2f} | {achieved:.0f} | {achieved / peaks[precision]:.0%} |")
    for precision, r in sample_rate.items():
        print(f"| {precision} | nchw | 1-step sampling (no guidance) | {r:.0f} | "
              f"{r / sample_rate['float32']:.2f}x | - | - | - | - |")


if __name__ == "__main__":
    main()
