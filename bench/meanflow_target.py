"""Where a trained MeanFlow probe's error comes from: the target's correction term per (t, r).

    python bench/meanflow_target.py PROBE_DIR [--n 256] [--cache DIR]

For world training scenes x, noise e, z_t = (1 - t) x + t e and v = e - x, at fixed (t, r):
|v|^2, the probe's |u|^2, the MeanFlow correction (t - r) du/dt of the target
u_tgt = v - (t - r) du/dt split into its parts (J_z u . v, the change with z along the path;
du/dt at fixed z, the change with time), and the squared error |u - u_tgt|^2 the trainer
minimises (summed over pixels, mean over scenes). At r = t the correction vanishes and the error
is flow matching's. The last two columns take the JVP along the probe's own velocity
u(z_t, t, t) instead of v (`--tangent model`, the trainer's default). Prints markdown rows for
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from emf_bench.generators.probe import ProbeGenerator
from emf_bench.probe.tangents import plain_attention
from emf_bench.text.cache import FeatureCache
from emf_bench.world import World, WorldConfig

PAIRS = ((0.3, 0.3), (0.3, 0.0), (0.6, 0.6), (0.6, 0.3), (0.6, 0.0), (0.9, 0.9), (0.9, 0.45),
         (0.9, 0.0), (1.0, 1.0), (1.0, 0.5), (1.0, 0.0))


def squared(a: torch.Tensor) -> float:
    return float((a.detach() ** 2).flatten(1).sum(1).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("probe", type=Path)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    generator = ProbeGenerator(args.probe, cache=FeatureCache(args.cache))
    world = World(WorldConfig.from_dict(generator.state.get("world", {})))
    examples = list(world.training_set(args.n, seed=args.seed))
    images = np.stack([world.render(e.scene) for e in examples])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    conditions, rows = generator.conditions([e.caption for e in examples])
    cond = conditions.pooled[rows]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(args.seed))
    model = generator.model

    def fn(z, t, r):
        return model(z, t, r, cond, None, None)

    print(f"probe {generator.name}, step {generator.state['step']}, {args.n} training scenes\n")
    print("| t | r | \\|v\\|^2 | \\|u\\|^2 | \\|(t-r) J_z u.v\\|^2 "
          "| \\|(t-r) du/dt at fixed z\\|^2 "
          "| \\|correction\\|^2 | \\|u - u_tgt\\|^2 | model tangent: \\|correction\\|^2 "
          "| \\|u - u_tgt\\|^2 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t_value, r_value in PAIRS:
        t = torch.full((args.n,), t_value)
        r = torch.full((args.n,), r_value)
        t4, gap = t[:, None, None, None], (t - r)[:, None, None, None]
        z = (1 - t4) * x + t4 * noise
        v = noise - x
        zeros_t, zeros_r = torch.zeros_like(t), torch.zeros_like(r)
        with plain_attention(), torch.no_grad():
            u, along_z = torch.func.jvp(fn, (z, t, r), (v, zeros_t, zeros_r))
            _, along_t = torch.func.jvp(fn, (z, t, r), (torch.zeros_like(v), torch.ones_like(t),
                                                         zeros_r))
            _, along_model = torch.func.jvp(fn, (z, t, r), (fn(z, t, t), zeros_t, zeros_r))
        correction = gap * (along_z + along_t)
        error = squared(u - (v - correction))
        model_correction = gap * (along_model + along_t)
        model_error = squared(u - (v - model_correction))
        print(f"| {t_value} | {r_value} | {squared(v):.0f} | {squared(u):.0f} | "
              f"{squared(gap * along_z):.0f} | {squared(gap * along_t):.0f} | "
              f"{squared(correction):.0f} | {error:.0f} | {squared(model_correction):.0f} | "
              f"{model_error:.0f} |")


if __name__ == "__main__":
    main()
