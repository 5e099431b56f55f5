"""MeanFlow's target, its JVP strategies and the (t, r) schedules."""

import pytest
import torch
from tests_shared import perturb

from emf_bench.errors import EmfBenchError
from emf_bench.probe.model import build_model
from emf_bench.probe.objectives import Objective, average_velocity_and_derivative, probe_loss
from emf_bench.probe.presets import ProbeConfig
from emf_bench.probe.schedules import TimeSchedule
from emf_bench.probe.tangents import plain_attention


def tiny(arch="dit", **kw):
    config = ProbeConfig(arch=arch, image_size=8, cond_dim=6, width=32, depth=2, heads=2,
                         patch=2, unet_channels=(8, 16), **kw)
    torch.manual_seed(0)
    model = build_model(config)
    # Zero-initialised output layers make u identically zero at init, and so du/dt: perturb
    # every parameter so the derivatives compared below are not trivially equal.
    perturb(model)
    return model


def inputs(n=4, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(n, 3, 8, 8, generator=g, dtype=dtype)
    v = torch.randn(n, 3, 8, 8, generator=g, dtype=dtype)
    t = torch.rand(n, generator=g, dtype=dtype) * 0.8 + 0.2
    r = t * torch.rand(n, generator=g, dtype=dtype)
    pooled = torch.randn(n, 6, generator=g, dtype=dtype)
    return z, v, t, r, pooled


@pytest.mark.parametrize("arch, conditioning", [("dit", "pooled"), ("dit", "both"),
                                                 ("unet", "tokens")])
def test_jvp_strategies_agree_in_float64(arch, conditioning):
    model = tiny(arch, conditioning=conditioning, unet_attention=True).double()
    z, v, t, r, pooled = inputs(dtype=torch.float64)
    tokens = torch.randn(4, 5, 6, dtype=torch.float64)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[0, 3:] = False

    def fn(zz, tt, rr):
        return model(zz, tt, rr, pooled, tokens, mask)

    u_func, d_func = average_velocity_and_derivative(fn, z, t, r, v, "func")
    u_auto, d_auto = average_velocity_and_derivative(fn, z, t, r, v, "autograd")
    _, d_fd = average_velocity_and_derivative(fn, z, t, r, v, "fd", fd_step=1e-5)
    assert d_func.abs().max() > 1e-3  # a real derivative, not zeros
    rel = lambda a, b: float((a - b).detach().norm() / b.detach().norm())  # noqa: E731
    assert rel(u_func, u_auto) < 1e-12
    assert rel(d_func, d_auto) < 1e-5
    assert rel(d_fd, d_func) < 1e-4  # central differences: O(h^2) error


@pytest.mark.parametrize("conditioning, prediction, time, layout", [
    ("pooled", "x", "interval", 3), ("tokens", "u", "interval", 0), ("both", "x", "single", 2)])
def test_the_unets_hand_written_jvp_matches_torch_func_in_float64(conditioning, prediction, time,
                                                                  layout):
    model = tiny("unet", conditioning=conditioning, prediction=prediction, time=time,
                 unet_attention=True, unet_patch=2 if conditioning == "pooled" else 1,
                 unet_layout=layout).double()
    z, v, t, r, pooled = inputs(dtype=torch.float64)
    t[0] = 0.01  # below t_min: the x-prediction's clamp has no slope there
    tokens = torch.randn(4, 5, 6, dtype=torch.float64)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[0, 3:] = False

    def fn(zz, tt, rr):
        return model(zz, tt, rr, pooled, tokens, mask)

    def dual(zz, tt, rr, dz, dt, dr):
        return model.dual(zz, tt, rr, pooled, tokens, mask, dz, dt, dr)

    u_func, d_func = average_velocity_and_derivative(fn, z, t, r, v, "func")
    u_dual, d_dual = average_velocity_and_derivative(fn, z, t, r, v, "dual", dual=dual)
    assert d_func.abs().max() > 1e-3 and not d_dual.requires_grad
    torch.testing.assert_close(u_dual, u_func, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d_dual, d_func, rtol=1e-10, atol=1e-10)
    # u from the dual pass carries the same gradient as the plain forward's
    grads = []
    for u in (u_dual, fn(z, t, r)):
        model.zero_grad()
        (u * v).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()
                                if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_the_hand_written_jvp_stays_accurate_under_bf16_autocast():
    """The default training path on bf16 hardware: du/dt within a few percent of float64's,
    as close as u itself, and in float32 from the network's output on."""
    model = tiny("unet", conditioning="tokens", prediction="x", unet_attention=True,
                 unet_layout=2)
    z, v, t, r, pooled = inputs()
    tokens = torch.randn(4, 5, 6)
    mask = torch.ones(4, 5, dtype=torch.bool)

    def fn(m, *a):
        return lambda zz, tt, rr: m(zz, tt, rr, *a, tokens.to(a[0].dtype), mask)

    def dual(m, *a):
        return lambda zz, tt, rr, dz, dt, dr: m.dual(zz, tt, rr, *a, tokens.to(a[0].dtype),
                                                      mask, dz, dt, dr)

    exact = model.double()
    d64 = [x.double() for x in (z, t, r, v)]
    u64, du64 = average_velocity_and_derivative(fn(exact, pooled.double()), *d64[:3], d64[3],
                                                "dual", dual=dual(exact, pooled.double()))
    model = model.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        u, du = average_velocity_and_derivative(fn(model, pooled), z, t, r, v, "dual",
                                                dual=dual(model, pooled))
    assert u.dtype == du.dtype == torch.float32
    rel = lambda a, b: float((a.double() - b).detach().norm() / b.detach().norm())  # noqa: E731
    assert du64.abs().max() > 1e-3
    assert 0 < rel(du, du64) < 0.03 and rel(u, u64) < 0.03


def test_auto_takes_the_hand_written_jvp_where_the_network_has_one():
    cond = {"pooled": inputs()[4], "tokens": None, "mask": None}
    z, v, t, r, _ = inputs()
    for arch, has_dual in (("unet", True), ("dit", False)):
        model = tiny(arch)
        assert model.has_dual is has_dual
        calls = []
        if has_dual:
            plain_dual = model.dual
            model.dual = lambda *a, calls=calls, plain_dual=plain_dual: (
                calls.append(1) or plain_dual(*a))
        losses = {jvp: probe_loss(model, torch.zeros_like(z), v, t, r, cond,
                                  Objective("meanflow", jvp, p=0.0))[1]["loss"]
                  for jvp in ("auto", "func")}
        assert losses["auto"] == pytest.approx(losses["func"], rel=1e-5)
        assert len(calls) == has_dual  # auto took the dual pass, func did not
        if not has_dual:
            with pytest.raises(EmfBenchError, match="hand-written tangent rules"):
                probe_loss(model, torch.zeros_like(z), v, t, r, cond, Objective(jvp="dual"))


def test_jvp_of_a_known_function():
    # u(z, r, t) = z * t^2 + r: along (v, r' = 0, t' = 1), du/dt = v t^2 + 2 z t.
    z, v, t, r, _ = inputs(dtype=torch.float64)
    t4 = t[:, None, None, None]

    def fn(zz, tt, rr):
        return zz * tt[:, None, None, None] ** 2 + rr[:, None, None, None]

    for strategy in ("func", "autograd", "fd"):
        _, d = average_velocity_and_derivative(fn, z, t, r, v, strategy, fd_step=1e-6)
        torch.testing.assert_close(d, v * t4 ** 2 + 2 * z * t4, rtol=1e-6, atol=1e-6)


def test_meanflow_target_uses_the_jvp_only_where_r_differs_from_t():
    model = tiny()
    z, v, t, r, pooled = inputs()
    x = torch.randn_like(z)
    r[:2] = t[:2]  # two rows with r = t: their target is plain v
    cond = {"pooled": pooled, "tokens": None, "mask": None}
    objective = Objective("meanflow", p=0.0)
    loss, stats = probe_loss(model, x, v, t, r, cond, objective)
    assert stats["moving"] == 0.5

    # The same loss by hand, the JVP taken on all rows (it vanishes where t = r).
    t4, r4 = t[:, None, None, None], r[:, None, None, None]
    zt = (1 - t4) * x + t4 * v
    vel = v - x
    with plain_attention():  # forward-mode AD does not pass through fused attention
        u, dudt = torch.func.jvp(lambda a, b, c: model(a, b, c, pooled), (zt, t, r),
                                 (vel, torch.ones_like(t), torch.zeros_like(r)))
    target = vel - (t4 - r4) * dudt
    expected = ((u - target) ** 2).flatten(1).sum(1).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


def test_the_model_tangent_takes_the_jvp_along_the_probes_own_velocity():
    model = tiny()
    z, v, t, r, pooled = inputs()
    x = torch.randn_like(z)
    cond = {"pooled": pooled, "tokens": None, "mask": None}
    loss, _ = probe_loss(model, x, v, t, r, cond, Objective("meanflow", p=0.0, tangent="model"))
    t4, r4 = t[:, None, None, None], r[:, None, None, None]
    zt = (1 - t4) * x + t4 * v

    def fn(a, b, c):
        return model(a, b, c, pooled)

    with torch.no_grad():
        instantaneous = fn(zt, t, t)
    with plain_attention():
        u, dudt = torch.func.jvp(fn, (zt, t, r), (instantaneous, torch.ones_like(t),
                                                  torch.zeros_like(r)))
    target = (v - x) - (t4 - r4) * dudt  # the sample's velocity stays in the target
    expected = ((u - target) ** 2).flatten(1).sum(1).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    sample, _ = probe_loss(model, x, v, t, r, cond, Objective("meanflow", p=0.0))
    assert abs(float(sample) - float(loss)) > 1e-3  # the tangent changed the target
    with pytest.raises(EmfBenchError, match="JVP tangent"):
        Objective(tangent="mean")


def test_flow_matching_is_the_r_equals_t_case_and_weights_are_detached():
    model = tiny()
    z, v, t, r, pooled = inputs()
    x = torch.randn_like(z)
    cond = {"pooled": pooled, "tokens": None, "mask": None}
    fm, _ = probe_loss(model, x, v, t, r, cond, Objective("flow-matching", p=0.0))
    mf_same, _ = probe_loss(model, x, v, t, t.clone(), cond, Objective("meanflow", p=0.0))
    torch.testing.assert_close(fm, mf_same)
    # Adaptive weight 1 / (loss + eps)^p: the loss value is about 1 per sample at p = 1, and
    # the gradient is that of the weighted error with the weight held fixed.
    weighted, stats = probe_loss(model, x, v, t, r, cond, Objective("meanflow", p=1.0))
    assert 0.9 < float(weighted.detach()) <= 1.0 and stats["mse"] > 1.0
    weighted.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_unknown_objective_and_strategy_are_named():
    with pytest.raises(EmfBenchError, match=r"unknown objective 'meanflw'.*'meanflow'"):
        Objective("meanflw")
    with pytest.raises(EmfBenchError, match="JVP strategy"):
        Objective(jvp="forward")


def test_schedules_keep_r_below_t_and_move_with_progress():
    g = torch.Generator().manual_seed(0)
    emf = TimeSchedule.named("emf")
    assert emf.at(0.0) == (-0.5, 1.0, 0.25) and emf.at(1.0) == (0.5, 2.0, 0.75)
    mid = TimeSchedule("emf", curve="cosine").at(0.25)
    assert mid[2] < TimeSchedule("emf").at(0.25)[2]  # cosine starts slower than linear
    for progress, share in ((0.0, 0.25), (1.0, 0.75)):
        t, r = emf.sample(20000, progress, g)
        assert (r <= t).all() and ((t > 0) & (t < 1)).all()
        assert abs(float((r < t).float().mean()) - share) < 0.02
    t, r = TimeSchedule.named("meanflow").sample(20000, 0.7, g)
    assert abs(float((r < t).float().mean()) - 0.25) < 0.02
    # Logit-normal(-0.4, 1): the median of max(a, b) is above sigmoid(-0.4).
    assert float(t.median()) > float(torch.sigmoid(torch.tensor(-0.4)))
    assert TimeSchedule.named("emf-cosine").at(0.25) == mid
    t, r = TimeSchedule.named("flow-matching").sample(1000, 0.5, g)
    assert torch.equal(t, r)
    with pytest.raises(EmfBenchError, match="time schedule"):
        TimeSchedule.named("cosine")
