"""The U-Net probe: a small conv U-Net with FiLM conditioning, self-attention and layout maps
at the lowest level, and cross-attention where configured; every layer has a `dual` (its
output and its tangent in one pass: the MeanFlow JVP, tangents.py)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from emf_bench.probe.conditioning import Conditioning, CrossAttention
from emf_bench.probe.presets import ProbeConfig
from emf_bench.probe.tangents import (
    attention_dual,
    group_norm_tangent,
    linear_tangent,
    silu_tangent,
)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, width: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(width, 2 * c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, c):
        return self.dual(x, c)[0]

    def dual(self, x, c, dx=None, dc=None):
        a = self.norm1(x)
        s = F.silu(a)
        h = self.conv1(s)
        film = self.film(c)
        scale, shift = (film[:, :, None, None] for film in film.chunk(2, dim=-1))
        n = self.norm2(h)
        g = n * (1 + scale) + shift
        out = self.skip(x) + self.conv2(F.silu(g))
        if dx is None:
            return out, None
        dh = linear_tangent(silu_tangent(group_norm_tangent(dx, self.norm1, x), a), self.conv1)
        dn = group_norm_tangent(dh, self.norm2, h)
        with torch.no_grad():
            d_scale, d_shift = (d[:, :, None, None]
                                for d in linear_tangent(dc, self.film).chunk(2, dim=-1))
            dg = dn * (1 + scale) + n * d_scale + d_shift
        return out, linear_tangent(dx, self.skip) + linear_tangent(
            silu_tangent(dg, g), self.conv2)


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention over a feature map's positions (zero-init output)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dual(x)[0]

    def dual(self, x, dx=None):
        b, c, h, w = x.shape

        def heads(qkv: torch.Tensor | None) -> tuple:
            if qkv is None:
                return None, None, None
            return qkv.view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)

        def merge(out: torch.Tensor) -> torch.Tensor:  # (B, heads, H * W, d) -> (B, H * W, C)
            return out.transpose(1, 2).reshape(b, h * w, c)

        seq = self.norm(x).flatten(2).transpose(1, 2)  # (B, H * W, C)
        d_seq = group_norm_tangent(dx, self.norm, x)
        d_seq = None if d_seq is None else d_seq.flatten(2).transpose(1, 2)
        out, d_out = attention_dual(*heads(self.qkv(seq)),
                                    *heads(linear_tangent(d_seq, self.qkv)))
        y = x + self.out(merge(out)).transpose(1, 2).view(b, c, h, w)
        if dx is None:
            return y, None
        return y, dx + linear_tangent(merge(d_out), self.out).transpose(1, 2).view(b, c, h, w)


class UNet(nn.Module):
    """A small conv U-Net with FiLM conditioning and cross-attention at the lowest level."""

    def __init__(self, config: ProbeConfig):
        super().__init__()
        self.config = config
        chans = config.unet_channels
        width = config.width
        self.cond = Conditioning(config, width)
        self.cond_act = nn.SiLU()
        p = config.unet_patch
        self.inp = nn.Conv2d(config.channels * p * p, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = chans[0]
        skips = []
        for i, c in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(config.blocks_per_level):
                blocks.append(ResBlock(c_prev, c, width))
                c_prev = c
            self.down.append(blocks)
            skips.append(c)
            if i < len(chans) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c_prev, c_prev, width)
        self.mid_attention = SelfAttention(c_prev, max(1, c_prev // 32)) \
            if config.unet_attention else None
        if config.unet_layout:
            self.layout_grid = config.image_size // config.unet_patch // 2 ** (len(chans) - 1)
            self.layout = nn.Linear(width, config.unet_layout * self.layout_grid ** 2)
            self.layout_mix = nn.Conv2d(config.unet_layout, c_prev, 1)
            nn.init.zeros_(self.layout_mix.weight)
            nn.init.zeros_(self.layout_mix.bias)
        self.cross = CrossAttention(c_prev, max(1, c_prev // 32)) if config.conditioning in (
            "tokens", "both") else None
        self.key_proj = nn.Linear(width, c_prev) if self.cross is not None else None
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, c in reversed(list(enumerate(chans))):
            blocks = nn.ModuleList()
            for j in range(config.blocks_per_level):
                blocks.append(ResBlock(c_prev + (skips[i] if j == 0 else 0), c, width))
                c_prev = c
            self.up.append(blocks)
            if i > 0:
                self.upsample.append(nn.Conv2d(c, chans[i - 1], 3, padding=1))
                c_prev = chans[i - 1]
        self.out_norm = nn.GroupNorm(min(8, c_prev), c_prev)
        self.out = nn.Conv2d(c_prev, config.channels * p * p, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z, t, r, pooled, tokens=None, token_mask=None):
        return self.dual(z, t, r, pooled, tokens, token_mask)[0]

    def dual(self, z, t, r, pooled, tokens=None, token_mask=None, dz=None, dt=None, dr=None):
        """The network's output and, given tangents (dz, dt, dr), its JVP along them."""

        def linear(op, x, dx):  # an operation linear in x: the same on the tangent
            return op(x), None if dx is None else op(dx)

        c, keys, key_mask = self.cond(t, r, pooled, tokens, token_mask)
        dc = silu_tangent(self.cond.time_tangent(t, r, dt, dr), c)
        c = self.cond_act(c)
        p = self.config.unet_patch
        x, dx = linear(lambda v: F.pixel_unshuffle(v, p) if p > 1 else v, z, dz)
        x, dx = self.inp(x), linear_tangent(dx, self.inp)
        skips = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                x, dx = block.dual(x, c, dx, dc)
            skips.append((x, dx))
            if i < len(self.downsample):
                x, dx = self.downsample[i](x), linear_tangent(dx, self.downsample[i])
        x, dx = self.mid.dual(x, c, dx, dc)
        if self.config.unet_layout:
            g, k = self.layout_grid, self.config.unet_layout
            maps = self.layout_mix(self.layout(c).view(-1, k, g, g))
            x = x + maps
            if dx is not None and dc is not None:
                dx = dx + linear_tangent(linear_tangent(dc, self.layout).view(-1, k, g, g),
                                         self.layout_mix)
        if self.mid_attention is not None:
            x, dx = self.mid_attention.dual(x, dx)
        if self.cross is not None and keys is not None:
            b, ch, hh, ww = x.shape
            seq, d_seq = linear(lambda v: v.flatten(2).transpose(1, 2), x, dx)
            y, dy = self.cross.dual(seq, self.key_proj(keys), key_mask, d_seq)
            x, dx = linear(lambda v: v.transpose(1, 2).reshape(b, ch, hh, ww), seq + y,
                           None if dx is None else d_seq + dy)
        for k, blocks in enumerate(self.up):
            skip, d_skip = skips.pop()
            x, dx = torch.cat([x, skip], dim=1), None if dx is None else torch.cat([dx, d_skip], 1)
            for block in blocks:
                x, dx = block.dual(x, c, dx, dc)
            if k < len(self.upsample):
                x, dx = linear(lambda v: F.interpolate(v, scale_factor=2, mode="nearest"), x, dx)
                x, dx = self.upsample[k](x), linear_tangent(dx, self.upsample[k])
        a = self.out_norm(x)
        da = group_norm_tangent(dx, self.out_norm, x)
        out, d_out = self.out(F.silu(a)), linear_tangent(silu_tangent(da, a), self.out)
        return linear(lambda v: F.pixel_shuffle(v, p) if p > 1 else v, out, d_out)
