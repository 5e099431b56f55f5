"""The DiT probe: patchify, transformer blocks with adaLN-Zero, unpatchify (as DiT's
models.py), with cross-attention to text tokens where configured. No hand-written tangents:
its JVP is torch.func's."""

from __future__ import annotations

import torch
from torch import nn

from emf_bench.probe.conditioning import Conditioning, CrossAttention, modulate
from emf_bench.probe.presets import ProbeConfig
from emf_bench.probe.tangents import attention


class DiTBlock(nn.Module):
    """adaLN-Zero block (DiT), with cross-attention to text tokens when configured."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, cross: bool):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.cross = CrossAttention(width, heads) if cross else None
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x, c, keys=None, key_mask=None):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        b, n, w = x.shape
        h = modulate(self.norm1(x), shift1, scale1)
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        x = x + gate1.unsqueeze(1) * self.proj(attention(q, k, v).transpose(1, 2).reshape(b, n, w))
        if self.cross is not None and keys is not None:
            x = x + self.cross(x, keys, key_mask)
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """Patchify, transformer blocks with adaLN-Zero, unpatchify (as DiT's models.py)."""

    def __init__(self, config: ProbeConfig):
        super().__init__()
        self.config = config
        w, p = config.width, config.patch
        self.grid = config.image_size // p
        self.patchify = nn.Conv2d(config.channels, w, p, stride=p)
        self.pos = nn.Parameter(_sincos_2d(w, self.grid), requires_grad=False)  # (T, w)
        self.cond = Conditioning(config, w)
        cross = config.conditioning in ("tokens", "both")
        self.blocks = nn.ModuleList(DiTBlock(w, config.heads, config.mlp_ratio, cross)
                                    for _ in range(config.depth))
        self.final_norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.final = nn.Linear(w, p * p * config.channels)
        for layer in (self.final_ada[1], self.final):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, z, t, r, pooled, tokens=None, token_mask=None):
        c, keys, key_mask = self.cond(t, r, pooled, tokens, token_mask)
        x = self.patchify(z).flatten(2).transpose(1, 2) + self.pos  # (B, T, w), T = (H / p)^2
        for block in self.blocks:
            x = block(x, c, keys, key_mask)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        x = self.final(modulate(self.final_norm(x), shift, scale))  # (B, T, p * p * C)
        b, g, p, ch = x.shape[0], self.grid, self.config.patch, self.config.channels
        return x.view(b, g, g, p, p, ch).permute(0, 5, 1, 3, 2, 4).reshape(b, ch, g * p, g * p)


def _sincos_2d(width: int, grid: int) -> torch.Tensor:
    coords = torch.arange(grid, dtype=torch.float32)
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    out_y = coords[:, None] * omega[None]
    emb_y = torch.cat([out_y.sin(), out_y.cos()], dim=1)  # (grid, width / 2)
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([emb_y[ys.flatten()], emb_y[xs.flatten()]], dim=1)
