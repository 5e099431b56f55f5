"""Attention, and hand-written forward-mode rules: the MeanFlow JVP of the U-Net in one pass.

`dual` methods of the network's layers return a layer's output with its autograd graph and,
given input tangents, its tangent without one (the MeanFlow target is detached). The weights are
constants. One pass then gives u for the loss and du/dt for the target: torch.func.jvp needs a
forward of its own, runs every convolution three times (the weights' zero tangents included)
and decomposes group norm into a dozen passes (bench/probe_speed.py). Checked against
torch.func.jvp in float64 (tests/probe/test_objectives.py). Under bf16 autocast the rules run
in the dtype of their inputs (convolutions in bf16, group norm's statistics from bf16 inputs);
the network's output and du/dt are taken to float32 in `AverageVelocity`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

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
