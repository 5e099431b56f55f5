"""How long a probe's training will take here: a few steps of its network, measured.

A study shows its estimated time before it trains (and its progress bars count it down). The
estimate times a few optimizer steps of each objective on random batches of the probe's own
network, batch size, precision and threads; it decides nothing (budgets are steps) and leaves
the random streams the training draws from as they were.
"""

from __future__ import annotations

import time

import torch

from emf_bench.probe.precision import autocast


def step_seconds(config, cond_dim: int, device: torch.device, precision: str,
                 steps: int = 3) -> dict[str, float]:
    """Seconds per optimizer step of flow matching and of MeanFlow for a probe trained with
    `config` (a TrainConfig), and per network evaluation of one image when sampling ("sample"):
    each the median of `steps` after one untimed step."""
    from emf_bench.probe.model import build_model
    from emf_bench.probe.objectives import Objective, probe_loss
    from emf_bench.probe.schedules import TimeSchedule

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        model = build_model(config.probe_config(cond_dim)).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
        g = torch.Generator().manual_seed(0)
        bs, size = config.batch_size, model.config.image_size
        x = (torch.rand(bs, 3, size, size, generator=g) * 2 - 1).to(device)
        cond = {"pooled": torch.randn(bs, cond_dim, generator=g).to(device), "tokens": None,
                "mask": None, "dropped": torch.zeros(bs, dtype=torch.bool, device=device)}
        if config.conditioning != "pooled":
            cond["tokens"] = torch.randn(bs, 8, cond_dim, generator=g).to(device)
            cond["mask"] = torch.ones(bs, 8, dtype=torch.bool, device=device)
        out = {}
        for kind, objective in (("flow-matching", Objective("flow-matching")),
                                ("meanflow", config.meanflow_objective())):
            schedule = TimeSchedule.named(config.schedule if kind == "meanflow" else kind)
            t, r = (s.to(device) for s in schedule.sample(bs, 0.5, g))
            noise = torch.randn(x.shape, generator=g).to(device)

            def train_step():
                with autocast(device, precision):
                    loss, _ = probe_loss(model, x, noise, t, r, cond, objective)  # noqa: B023
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            out[kind] = _median_seconds(train_step, steps, device)

        def sample():
            with torch.no_grad(), autocast(device, precision):
                model(x, t, t, cond["pooled"], cond["tokens"], cond["mask"])

        out["sample"] = _median_seconds(sample, steps, device) / bs  # one evaluation per image
    return out


def _median_seconds(fn, steps: int, device: torch.device) -> float:
    """The median time of `steps` calls of fn after an untimed one."""
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def probe_seconds(config, steps: int, per_step: dict[str, float]) -> float:
    """A probe's training time for `steps` steps: a MeanFlow probe's warm start trains flow
    matching."""
    if config.objective == "flow-matching":
        return steps * per_step["flow-matching"]
    warm = config.warm_start
    return steps * (warm * per_step["flow-matching"] + (1 - warm) * per_step["meanflow"])
