"""The probe's velocity network u(z_t, r, t | text): a DiT (dit.py) or a small conv U-Net
(unet.py) in the configured parameterisation.

Both take EMF's two time embeddings, phi_end(t) + phi_interval(t - r) (a flow-matching probe has
the single phi(t)), and text features two ways, selectable: pooled features into adaLN / FiLM,
and token features with their mask through cross-attention (conditioning.py). The null condition
for guidance is a zero feature or a learned one. Architectures and size presets: presets.py.
"""

from __future__ import annotations

import torch
from torch import nn

from emf_bench.probe.conditioning import Conditioning
from emf_bench.probe.dit import DiT
from emf_bench.probe.presets import ProbeConfig
from emf_bench.probe.unet import UNet


def _at_least_float32(x: torch.Tensor | None) -> torch.Tensor | None:
    """bf16 / float16 to float32; float32 and float64 (the JVP tests) as they are."""
    return x if x is None or x.dtype in (torch.float32, torch.float64) else x.float()


class AverageVelocity(nn.Module):
    """u(z_t, r, t) from a backbone, in the configured parameterisation."""

    def __init__(self, config: ProbeConfig):
        super().__init__()
        self.config = config
        self.net = DiT(config) if config.arch == "dit" else UNet(config)

    @property
    def cond(self) -> Conditioning:
        return self.net.cond

    @property
    def has_dual(self) -> bool:
        return self.config.has_tangent_rules

    def forward(self, z, t, r, pooled, tokens=None, token_mask=None):
        z = z.contiguous()  # GroupNorm under forward AD fails on strided (e.g. NHWC) inputs
        # float32 from here on under bf16 autocast: u = (z - D) / t divides by t down to t_min
        # (20x the network's rounding), and the loss and MeanFlow's target are differences.
        out = _at_least_float32(self.net(z, t, r, pooled, tokens, token_mask))
        if self.config.prediction == "u":
            return out
        scale = t.clamp(min=self.config.t_min)[:, None, None, None]
        return (z - out) / scale

    def dual(self, z, t, r, pooled, tokens, token_mask, dz, dt, dr):
        """(u with its graph, the JVP of u along (dz, dt, dr) without one), in one pass."""
        out, d_out = self.net.dual(z, t, r, pooled, tokens, token_mask, dz, dt, dr)
        out, d_out = _at_least_float32(out), _at_least_float32(d_out)  # as in forward
        if self.config.prediction == "u":
            return out, d_out
        scale = t.clamp(min=self.config.t_min)[:, None, None, None]
        u = (z - out) / scale
        with torch.no_grad():
            d_scale = torch.where(t > self.config.t_min, dt, 0)[:, None, None, None]
            return u, (dz - d_out - u * d_scale) / scale


def build_model(config: ProbeConfig) -> nn.Module:
    return AverageVelocity(config)


__all__ = ["AverageVelocity", "build_model"]
