"""The probe's velocity network u(z_t, r, t | text): DiT-style or a small conv U-Net.

Both take EMF's two time embeddings, phi_end(t) + phi_interval(t - r) (a flow-matching probe has
the single phi(t)), and text features two ways, selectable: pooled features into adaLN / FiLM,
and token features with their mask through cross-attention. The null condition for guidance is
a zero feature or a learned one. Size presets are small factory functions in `PROBE_PRESETS`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace

import torch
from torch import nn
from torch.nn import functional as F

from emf_bench.errors import EmfBenchError, unknown_name

CONDITIONING = ("pooled", "tokens", "both")
TIME_MODES = ("interval", "single")  # meanflow: end(t) + interval(t - r); flow matching: t

_PLAIN_ATTENTION = contextvars.ContextVar("plain_attention", default=False)


@contextlib.contextmanager
def plain_attention() -> Iterator[None]:
    """Inside, attention is written out by hand: forward-mode AD (the MeanFlow JVP) does not
    pass through PyTorch's fused attention kernels."""
    token = _PLAIN_ATTENTION.set(True)
    try:
        yield
    finally:
        _PLAIN_ATTENTION.reset(token)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, Lq, d) attention; `mask` (B, Lk) True on keys to attend to."""
    bias = None
    if mask is not None:
        bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device)
        bias = bias.masked_fill(~mask, float("-inf"))[:, None, None, :]
    if _PLAIN_ATTENTION.get():
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if bias is not None:
            scores = scores + bias
        return scores.softmax(dim=-1) @ v
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


# --- hand-written forward mode (the MeanFlow JVP of the U-Net) -------------------------------
# `dual` methods return a layer's output with its autograd graph and, given input tangents, its
# tangent without one (the MeanFlow target is detached). The weights are constants. One pass
# then gives u for the loss and du/dt for the target: torch.func.jvp needs a forward of its own,
# runs every convolution three times (the weights' zero tangents included) and decomposes group
# norm into a dozen passes (bench/probe_speed.py). Checked against torch.func.jvp in float64
# (tests/probe/test_objectives.py).


def _tangent(rule):
    """A tangent rule: None when its first argument (a tangent) is None, else run without
    gradients."""

    @functools.wraps(rule)
    def wrapped(dx, *args):
        if dx is None:
            return None
        with torch.no_grad():
            return rule(dx, *args)

    return wrapped


@_tangent
def linear_tangent(dx: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Tangent through a Linear, Conv2d or Identity layer: the layer without its bias."""
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(dx, layer.weight, None, layer.stride, layer.padding, layer.dilation,
                        layer.groups)
    if isinstance(layer, nn.Linear):
        return F.linear(dx, layer.weight)
    if isinstance(layer, nn.Identity):
        return dx
    raise TypeError(f"no tangent rule for {type(layer).__name__}")


@_tangent
def silu_tangent(dx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return dx * s * (1 + x * (1 - s))


def _standardized_tangent(dx: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Tangent of x_hat = (x - mean) rstd over the last dimension:
    rstd (dx - mean(dx) - x_hat mean(x_hat dx))."""
    var, mean = torch.var_mean(x, dim=-1, correction=0, keepdim=True)
    rstd = (var + eps).rsqrt()
    x_hat = (x - mean) * rstd
    return rstd * (dx - dx.mean(-1, keepdim=True) - x_hat * (x_hat * dx).mean(-1, keepdim=True))


@_tangent
def group_norm_tangent(dx: torch.Tensor, norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """The standardisation's tangent per group, times the weight."""
    n, c = x.shape[:2]
    out = _standardized_tangent(dx.reshape(n, norm.num_groups, -1),
                                x.reshape(n, norm.num_groups, -1), norm.eps).view_as(x)
    return out * norm.weight.view((1, c) + (1,) * (x.dim() - 2)) if norm.affine else out


@_tangent
def layer_norm_tangent(dx: torch.Tensor, norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """The standardisation's tangent over the last dimension, times the weight if any."""
    out = _standardized_tangent(dx, x, norm.eps)
    return out if norm.weight is None else out * norm.weight


def attention_dual(q, k, v, dq=None, dk=None, dv=None, mask=None):
    """(attention, its tangent). Without tangents: `attention` (the fused kernel where it may)."""
    if dq is None:
        return attention(q, k, v, mask), None
    scale = 1 / math.sqrt(q.shape[-1])
    scores = q @ k.transpose(-1, -2) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    probs = scores.softmax(dim=-1)
    with torch.no_grad():
        d_scores = dq @ k.transpose(-1, -2) * scale
        if dk is not None:
            d_scores = d_scores + q @ dk.transpose(-1, -2) * scale
        d_probs = probs * (d_scores - (probs * d_scores).sum(-1, keepdim=True))
        d_out = d_probs @ v if dv is None else d_probs @ v + probs @ dv
    return probs @ v, d_out


@dataclass(frozen=True)
class ProbeConfig:
    """Architecture of a probe (saved with every checkpoint)."""

    arch: str = "dit"  # "dit" or "unet"
    image_size: int = 32
    channels: int = 3
    cond_dim: int = 16  # the text encoder's feature size
    conditioning: str = "pooled"
    time: str = "interval"
    null: str = "zero"  # "zero" feature or "learned" embedding
    width: int = 128
    depth: int = 4
    heads: int = 4
    patch: int = 4
    mlp_ratio: float = 4.0
    unet_channels: tuple[int, ...] = (32, 64, 128)
    blocks_per_level: int = 1
    # The U-Net works on space-to-depth patches (pixel-unshuffle): lossless, and a patch of 2
    # quarters the cost of every level while each output position still paints its 2x2 pixels.
    unet_patch: int = 1
    # Self-attention at the U-Net's lowest resolution: global communication, which a one-step
    # sampler needs to settle where the objects go (16 tokens at 32x32 with patch 2: cheap).
    unet_attention: bool = False
    # Layout maps: the condition (with time) through a linear layer to this many maps at the
    # lowest resolution, mixed into its channels by a 1x1 convolution (zero-initialised). FiLM
    # modulates every position alike and convolutions see no absolute position, so without
    # them where objects go follows the noise, not the prompt. 0: none.
    unet_layout: int = 0
    # t is multiplied by this before the sinusoids. DiT uses 1000; du/dt inherits the factor,
    # and MeanFlow's target v - (t - r) du/dt then runs away: in a sweep (class-label, 1,000
    # steps) the 1-step world score of single objects rose from 0.17 at 1000 to 0.50 at 20.
    time_scale: float = 20.0
    # "u": the network outputs the average velocity. "x": it outputs a clean-image estimate D and
    # u = (z_t - D) / max(t, t_min): one step then returns D itself, and a small network spends
    # its capacity on images instead of on reproducing the noise (as in JiT, "Back to Basics").
    prediction: str = "u"
    t_min: float = 0.05

    @property
    def has_tangent_rules(self) -> bool:
        """Whether the network has hand-written tangent rules (`dual`): the U-Net has."""
        return self.arch == "unet"

    def __post_init__(self) -> None:
        object.__setattr__(self, "unet_channels", tuple(self.unet_channels))
        if self.arch not in ("dit", "unet"):
            raise unknown_name("probe architecture", self.arch, ("dit", "unet"))
        if self.conditioning not in CONDITIONING:
            raise unknown_name("conditioning", self.conditioning, CONDITIONING)
        if self.time not in TIME_MODES:
            raise unknown_name("time conditioning", self.time, TIME_MODES)
        if self.prediction not in ("u", "x"):
            raise unknown_name("prediction", self.prediction, ("u", "x"))
        if self.null not in ("zero", "learned"):
            raise unknown_name("null condition", self.null, ("zero", "learned"))
        if self.arch == "dit" and self.image_size % self.patch:
            raise EmfBenchError(f"image size {self.image_size} is not a multiple of patch "
                                f"{self.patch}")
        if self.arch == "unet" and (self.image_size // self.unet_patch) % 2 ** (
                len(self.unet_channels) - 1):
            raise EmfBenchError(f"image size {self.image_size} cannot be halved "
                                f"{len(self.unet_channels) - 1} times")
        if self.unet_layout < 0:
            raise EmfBenchError(f"unet_layout is a number of layout maps (0: none), got "
                                f"{self.unet_layout}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["unet_channels"] = list(self.unet_channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ProbeConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# --- shared pieces ----------------------------------------------------------------------------


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


# --- DiT --------------------------------------------------------------------------------------


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


# --- U-Net ------------------------------------------------------------------------------------


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


# --- presets ----------------------------------------------------------------------------------


def cpu_unet(**kw) -> ProbeConfig:
    """Trains in minutes on 2 CPU cores at 32x32 (the default): 2x2 space-to-depth, two
    levels (16x16, 8x8), self-attention at the lowest one (1.1M parameters).
    Measured against (64, 128) channels: 1.4x the images/s and no worse per minute of training.
    No layout maps: at the quick budget (1450 steps, every task) they gave no position and cost
    the 1-step score (two seeds: 0.293 and 0.317 against 0.344 and 0.324, BENCHMARKS.md)."""
    return ProbeConfig(arch="unet", width=128, unet_channels=(48, 96), unet_patch=2,
                       unet_attention=True, **kw)


def cpu_layout_unet(**kw) -> ProbeConfig:
    """`cpu` with 8 layout maps at the lowest level, so the prompt can move objects. Trained on
    position prompts alone for 1450 steps, class-label's 1-step position score rose from 0.14
    to 0.32 (bag-of-words, which cannot tell "a left of b" from "b left of a", stayed at 0.09);
    the `long` study trains it (position first, then the whole mix)."""
    return replace(cpu_unet(**kw), unet_layout=8)


def cpu_dit(**kw) -> ProbeConfig:
    return ProbeConfig(arch="dit", width=128, depth=4, heads=4, patch=4, **kw)


def gpu_dit_s(**kw) -> ProbeConfig:
    return ProbeConfig(arch="dit", width=384, depth=12, heads=6, patch=2, **kw)


def gpu_dit_b(**kw) -> ProbeConfig:
    return ProbeConfig(arch="dit", width=768, depth=12, heads=12, patch=2, **kw)


def gpu_unet(**kw) -> ProbeConfig:
    return ProbeConfig(arch="unet", width=256, unet_channels=(64, 128, 256), blocks_per_level=2,
                       unet_layout=8, **kw)


def tiny_unet(**kw) -> ProbeConfig:
    """Seconds per hundred steps: for tests and smoke runs, not for quality."""
    return ProbeConfig(arch="unet", width=32, unet_channels=(8, 16), unet_patch=2, **kw)


PROBE_PRESETS = {"cpu": cpu_unet, "cpu-layout": cpu_layout_unet, "cpu-dit": cpu_dit,
                 "gpu-unet": gpu_unet, "gpu-dit-s": gpu_dit_s, "gpu-dit-b": gpu_dit_b,
                 "tiny": tiny_unet}


def preset(name: str, **overrides) -> ProbeConfig:
    if name not in PROBE_PRESETS:
        raise unknown_name("probe size preset", name, PROBE_PRESETS)
    return PROBE_PRESETS[name](**overrides)


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


def with_time(config: ProbeConfig, time: str) -> ProbeConfig:
    return replace(config, time=time)


__all__ = ["PROBE_PRESETS", "ProbeConfig", "build_model", "field", "plain_attention", "preset"]
