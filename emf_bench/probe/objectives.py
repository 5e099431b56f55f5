"""MeanFlow and flow-matching objectives.

Path z_t = (1 - t) x + t e (t = 1 is noise), velocity v = e - x. The network u(z_t, r, t)
predicts the average velocity over [r, t]; the MeanFlow target is
u_tgt = v - (t - r) du/dt, with du/dt the JVP of u along (v, 0, 1) in (z, r, t), detached.
Per-sample loss: sum over dimensions of (u - u_tgt)^2, weighted by 1 / (loss + 1e-3)^p
(weight detached). Flow matching is r = t: no JVP, target v.

The JVP's tangent in z is the sample's v (`tangent="sample"`, the MeanFlow paper) or the
network's own instantaneous velocity u(z_t, t, t) (`tangent="model"`, detached). The target is
linear in the tangent, so both give the same target in expectation where u(z_t, t, t) is the
conditional mean of v; the model tangent drops the noise that v carries around that mean, which
J_z u amplifies where the map from noise to image is sharp (t near 1, r near 0:
bench/meanflow_target.py). It costs one more forward pass, without gradients, of the rows with
r != t.

Guidance trained into the target (the MeanFlow paper's way, `guidance` w != 1): for samples
that keep their condition, v is replaced by v~ = w v + (1 - w) u(z_t, t, t | null), the network's
own null-condition velocity (detached), in the target and, with the sample tangent, as the JVP
tangent (the model tangent already learns the guided velocity at r = t); sampling then
needs one network call per step. EMF instead guides at sampling time (see the sampler).

The JVP is taken only for the samples with r != t (the term vanishes when r = t). Strategies:
`dual` (the network's hand-written tangent rules: u and du/dt in one pass, about half the cost
of torch.func.jvp; the U-Net has them), `func` (torch.func.jvp, inside `plain_attention()`
because forward-mode AD does not pass through fused attention kernels), `autograd` (double
backward), `fd` (central finite differences); `auto` (the default) is `dual` where the network
has the rules and `func` elsewhere. All give the same du/dt (tests/probe/test_objectives.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from emf_bench.errors import EmfBenchError, unknown_name
from emf_bench.probe.tangents import plain_attention

OBJECTIVES = ("meanflow", "flow-matching")
JVP_STRATEGIES = ("auto", "dual", "func", "autograd", "fd")
TANGENTS = ("sample", "model")


@dataclass(frozen=True)
class Objective:
    kind: str = "meanflow"
    jvp: str = "auto"
    p: float = 1.0  # adaptive weight exponent (0: plain summed squared error)
    eps: float = 1e-3  # adaptive weight offset
    fd_step: float = 1e-3
    guidance: float = 1.0  # trained-in guidance scale w (1: none)
    tangent: str = "sample"  # z-tangent of the JVP: the sample's v, or the model's u(z, t, t)

    def __post_init__(self) -> None:
        if self.kind not in OBJECTIVES:
            raise unknown_name("objective", self.kind, OBJECTIVES)
        if self.jvp not in JVP_STRATEGIES:
            raise unknown_name("JVP strategy", self.jvp, JVP_STRATEGIES)
        if self.tangent not in TANGENTS:
            raise unknown_name("JVP tangent", self.tangent, TANGENTS)

    def to_dict(self) -> dict:
        return asdict(self)


Fn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# (z, t, r, dz, dt, dr) -> (u with its graph, the JVP along (dz, dt, dr) without one)
DualFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def average_velocity_and_derivative(fn: Fn, z: torch.Tensor, t: torch.Tensor, r: torch.Tensor,
                                    v: torch.Tensor, strategy: str = "func",
                                    fd_step: float = 1e-3, dual: DualFn | None = None
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, du/dt) of fn(z, t, r) along tangents (v, 1, 0); u keeps its graph, du/dt does not.
    `dual` is fn with hand-written tangent rules (strategies `dual` and `auto`)."""
    ones, zeros = torch.ones_like(t), torch.zeros_like(r)
    if strategy == "auto":
        strategy = "func" if dual is None else "dual"
    if strategy == "dual":
        if dual is None:
            raise EmfBenchError("JVP strategy 'dual' needs a network with hand-written tangent "
                                "rules (the U-Net probes); use 'func'")
        return dual(z, t, r, v, ones, zeros)
    u = fn(z, t, r)  # with its graph; every other strategy takes du/dt without one
    if strategy == "func":
        # (recording the tangent's operations for a backward that never comes costs more than
        # the extra forward)
        with plain_attention(), torch.no_grad():
            _, dudt = torch.func.jvp(fn, (z, t, r), (v, ones, zeros))
        return u, dudt
    if strategy == "autograd":
        with plain_attention(), torch.enable_grad():
            inputs = (z.detach().requires_grad_(), t.detach().requires_grad_(),
                      r.detach().requires_grad_())
            _, dudt = torch.autograd.functional.jvp(fn, inputs, (v, ones, zeros),
                                                    create_graph=False, strict=False)
        return u, dudt.detach()
    if strategy == "fd":
        h = fd_step
        with torch.no_grad():
            dudt = (fn(z + h * v, t + h, r) - fn(z - h * v, t - h, r)) / (2 * h)
        return u, dudt
    raise unknown_name("JVP strategy", strategy, JVP_STRATEGIES)


def _weighted(err: torch.Tensor, objective: Objective) -> tuple[torch.Tensor, torch.Tensor]:
    per_sample = err.flatten(1).sum(dim=1)
    if objective.p == 0:
        return per_sample.mean(), per_sample.detach()
    weight = 1.0 / (per_sample.detach() + objective.eps) ** objective.p
    return (weight * per_sample).mean(), per_sample.detach()


def _velocities_without_graph(model: torch.nn.Module, z: torch.Tensor, t: torch.Tensor,
                              cond: dict, null_rows: torch.Tensor, own_rows: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """u(z_t, t, t) without a graph for `null_rows` under the null condition (trained-in
    guidance) and for `own_rows` under their own (the model tangent), in one batched forward:
    one larger call costs less than two (measured in bench/probe_speed.py)."""
    rows = torch.cat([null_rows, own_rows])
    if not len(rows):
        return rows.new_empty(0), rows.new_empty(0)
    tokens = cond["tokens"][rows] if cond.get("tokens") is not None else None
    mask = cond["mask"][rows] if cond.get("mask") is not None else None
    null = torch.arange(len(rows), device=rows.device) < len(null_rows)
    pooled, tokens = model.cond.apply_null(cond["pooled"][rows], tokens, null)
    with torch.no_grad():
        u = model(z[rows], t[rows], t[rows], pooled, tokens, mask)
    return u[:len(null_rows)], u[len(null_rows):]


def probe_loss(model: torch.nn.Module, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
               r: torch.Tensor, cond: dict, objective: Objective
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """(weighted loss, stats) for a batch of clean images x with their noise and times."""
    t4, r4 = t[:, None, None, None], r[:, None, None, None]
    z = (1 - t4) * x + t4 * noise
    v = noise - x
    if objective.kind == "flow-matching":
        r = t
        moving = torch.zeros_like(t, dtype=torch.bool)
    else:
        moving = r < t
    still = (~moving).nonzero().squeeze(1)
    move = moving.nonzero().squeeze(1)
    kept = move[:0]
    if objective.guidance != 1.0:  # v~ = w v + (1 - w) u(z_t, t, t | null), rows with a condition
        dropped = cond.get("dropped")
        kept = (~dropped if dropped is not None else torch.ones_like(t, dtype=torch.bool)
                ).nonzero().squeeze(1)
    model_tangent = objective.kind == "meanflow" and objective.tangent == "model"
    u_null, u_tangent = _velocities_without_graph(model, z, t, cond, kept,
                                                  move if model_tangent else move[:0])
    if len(u_null):
        v = v.clone()
        v[kept] = objective.guidance * v[kept] + (1 - objective.guidance) * u_null

    def fn_rows(rows: torch.Tensor) -> tuple[Fn, DualFn | None]:
        pooled = cond["pooled"][rows]
        tokens = cond["tokens"][rows] if cond.get("tokens") is not None else None
        mask = cond["mask"][rows] if cond.get("mask") is not None else None
        dual = None
        if getattr(model, "has_dual", False):
            def dual(zz, tt, rr, dz, dt, dr):
                return model.dual(zz, tt, rr, pooled, tokens, mask, dz, dt, dr)
        return (lambda zz, tt, rr: model(zz, tt, rr, pooled, tokens, mask)), dual

    target = v.clone()
    u = torch.empty_like(x)
    if len(still):
        u_still = fn_rows(still)[0](z[still], t[still], t[still])
        u = u.index_put((still,), u_still)
    if len(move):
        fn, dual = fn_rows(move)
        tangent = u_tangent if model_tangent else v[move]
        u_move, dudt = average_velocity_and_derivative(
            fn, z[move], t[move], r[move], tangent, objective.jvp, objective.fd_step, dual)
        u = u.index_put((move,), u_move)
        target[move] = v[move] - (t4[move] - r4[move]) * dudt
    loss, per_sample = _weighted((u - target.detach()) ** 2, objective)
    return loss, {"loss": float(loss.detach()), "mse": float(per_sample.mean()),
                  "moving": float(moving.float().mean())}
