"""What the probe networks share: time embeddings, the condition vector, the text keys and
cross-attention to them."""

from __future__ import annotations

import math

import torch
from torch import nn

from emf_bench.probe.presets import ProbeConfig
from emf_bench.probe.tangents import (
    attention_dual,
    layer_norm_tangent,
    linear_tangent,
    silu_tangent,
)


class TimestepEmbedder(nn.Module):
    """Sinusoidal embedding of a scalar in [0, 1] followed by an MLP (DiT's).

    `scale` multiplies t before the sinusoids (DiT: 1000). du/dt inherits it: large scales make
    the MeanFlow target v - (t - r) du/dt run away, so probes use a small one.
    """

    def __init__(self, width: int, frequencies: int = 256, scale: float = 1000.0):
        super().__init__()
        self.frequencies = frequencies
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(frequencies, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.dual(t)[0]

    def dual(self, t: torch.Tensor, dt: torch.Tensor | None = None):
        half = self.frequencies // 2
        dtype = self.mlp[0].weight.dtype  # float32 (or float64 in the JVP tests), not t's
        freqs = self.scale * torch.exp(-math.log(10000) * torch.arange(
            half, device=t.device, dtype=dtype) / half)
        args = t[:, None].to(dtype) * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        first, act, second = self.mlp
        h = first(emb)
        out = second(act(h))
        if dt is None:
            return out, None
        with torch.no_grad():
            d_args = dt[:, None].to(dtype) * freqs[None]
            d_emb = torch.cat([-torch.sin(args) * d_args, torch.cos(args) * d_args], dim=-1)
        d_h = linear_tangent(d_emb, first)
        return out, linear_tangent(silu_tangent(d_h, h), second)


class Conditioning(nn.Module):
    """Time and text into one (B, width) vector, and text tokens into (B, L, width) keys."""

    def __init__(self, config: ProbeConfig, width: int):
        super().__init__()
        self.config = config
        if config.time == "interval":
            self.end = TimestepEmbedder(width, scale=config.time_scale)
            self.interval = TimestepEmbedder(width, scale=config.time_scale)
        else:
            self.time = TimestepEmbedder(width, scale=config.time_scale)
        if config.conditioning in ("pooled", "both"):
            self.pooled = nn.Sequential(nn.Linear(config.cond_dim, width), nn.SiLU(),
                                        nn.Linear(width, width))
        if config.conditioning in ("tokens", "both"):
            self.tokens = nn.Linear(config.cond_dim, width)
        if config.null == "learned":
            self.null_embedding = nn.Parameter(torch.zeros(config.cond_dim))

    def time_embedding(self, t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        if self.config.time == "interval":
            return self.end(t) + self.interval(t - r)
        return self.time(t)

    def apply_null(self, pooled: torch.Tensor, tokens: torch.Tensor | None,
                   drop: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Replace the conditions of rows where `drop` is True by the null condition."""
        if drop is None or not drop.any():
            return pooled, tokens
        null = self.null_embedding if self.config.null == "learned" else torch.zeros_like(
            pooled[0])
        pooled = torch.where(drop[:, None], null.to(pooled.dtype), pooled)
        if tokens is not None:
            tokens = torch.where(drop[:, None, None], null.to(tokens.dtype), tokens)
        return pooled, tokens

    def forward(self, t, r, pooled, tokens, token_mask):
        emb = self.time_embedding(t, r)
        if hasattr(self, "pooled"):
            emb = emb + self.pooled(pooled)
        keys = self.tokens(tokens) if hasattr(self, "tokens") and tokens is not None else None
        return emb, keys, token_mask

    def time_tangent(self, t, r, dt, dr) -> torch.Tensor | None:
        """The tangent of the time embedding along (dt, dr) (text has none)."""
        if dt is None:
            return None
        if self.config.time == "interval":
            return self.end.dual(t, dt)[1] + self.interval.dual(t - r, dt - dr)[1]
        return self.time.dual(t, dt)[1]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class CrossAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None):
        return self.dual(x, keys, mask)[0]

    def dual(self, x, keys, mask, dx=None):
        """Attention of x to the text keys (which have no tangent)."""
        b, n, w = x.shape
        h = self.heads
        q = self.q(self.norm(x)).view(b, n, h, w // h).transpose(1, 2)
        k, v = self.kv(keys).view(b, keys.shape[1], 2, h, w // h).permute(2, 0, 3, 1, 4)
        dq = linear_tangent(layer_norm_tangent(dx, self.norm, x), self.q)
        dq = None if dq is None else dq.view(b, n, h, w // h).transpose(1, 2)
        out, d_out = attention_dual(q, k, v, dq, None, None, mask)
        y = self.out(out.transpose(1, 2).reshape(b, n, w))
        if dx is None:
            return y, None
        return y, linear_tangent(d_out.transpose(1, 2).reshape(b, n, w), self.out)
