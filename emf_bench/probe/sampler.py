"""MeanFlow sampling in the shape of a diffusers scheduler: `set_timesteps(n)` then `step`.

One step: x = z_1 - u(z_1, r = 0, t = 1). N steps on the uniform grid linspace(1, 0, N + 1):
z <- z - (t_i - t_{i+1}) u(z, t_{i+1}, t_i). With guidance w != 1 the conditional and null
passes run as one batch and u = u_null + w (u_cond - u_null) (EMF's way; 2 network evaluations
per step). Steps, network evaluations and the guidance mode are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from emf_bench.errors import check_guidance


@dataclass
class SamplingRecord:
    steps: int = 0
    network_evaluations: int = 0  # per image: 2 per step when guided
    forward_calls: int = 0  # batched calls of the network
    guidance: float = 1.0
    # "none" or "cfg-batched"; a probe trained with guidance prefixes "trained-in W"
    guidance_mode: str = "none"
    timesteps: list[float] = field(default_factory=list)


class MeanFlowSampler:
    def __init__(self) -> None:
        self.timesteps = torch.tensor([1.0, 0.0])

    def set_timesteps(self, num_inference_steps: int) -> None:
        if num_inference_steps < 1:
            raise ValueError("at least one step")
        self.timesteps = torch.linspace(1.0, 0.0, num_inference_steps + 1)

    @staticmethod
    def step(model_output: torch.Tensor, t: float | torch.Tensor, sample: torch.Tensor,
             r: float | torch.Tensor) -> torch.Tensor:
        """The flow map z_r = z_t - (t - r) u: one jump from time t to time r <= t."""
        return sample - (t - r) * model_output

    @torch.no_grad()
    def sample(self, model: torch.nn.Module, noise: torch.Tensor, pooled: torch.Tensor,
               tokens: torch.Tensor | None = None, mask: torch.Tensor | None = None,
               steps: int = 1, guidance: float = 1.0, trained_guidance: float = 1.0
               ) -> tuple[torch.Tensor, SamplingRecord]:
        """Images (B, C, H, W) from noise, and what it took. `trained_guidance`: the scale the
        model learned into its velocity (recorded only; it costs nothing here)."""
        check_guidance(guidance, "guidance")
        self.set_timesteps(steps)
        modes = ([f"trained-in {trained_guidance:g}"] if trained_guidance != 1.0 else []) + (
            ["cfg-batched"] if guidance != 1.0 else [])
        record = SamplingRecord(steps=steps, guidance=guidance,
                                guidance_mode=" + ".join(modes) or "none",
                                timesteps=self.timesteps.tolist())
        guided = guidance != 1.0
        cond = model.cond if hasattr(model, "cond") else None
        if guided:
            drop = torch.arange(2 * len(noise), device=noise.device) >= len(noise)
            pooled2, tokens2 = cond.apply_null(torch.cat([pooled, pooled]),
                                               None if tokens is None else torch.cat(
                                                   [tokens, tokens]), drop)
            mask2 = None if mask is None else torch.cat([mask, mask])
        z = noise
        for t, r in zip(self.timesteps[:-1], self.timesteps[1:], strict=True):
            tt = torch.full((len(z),), float(t), device=z.device)
            rr = torch.full((len(z),), float(r), device=z.device)
            if guided:
                u_cond, u_null = model(torch.cat([z, z]), torch.cat([tt, tt]),
                                       torch.cat([rr, rr]), pooled2, tokens2, mask2).chunk(2)
                u = u_null + guidance * (u_cond - u_null)
                record.network_evaluations += 2
            else:
                u = model(z, tt, rr, pooled, tokens, mask)
                record.network_evaluations += 1
            record.forward_calls += 1
            z = self.step(u, t, z, r)
        return z, record
