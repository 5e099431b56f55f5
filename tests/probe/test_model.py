"""The probe's velocity network: presets, conditioning, time embeddings, attention."""

import pytest
import torch
from tests_shared import perturb

from emf_bench.errors import EmfBenchError
from emf_bench.probe.model import build_model
from emf_bench.probe.presets import PROBE_PRESETS, ProbeConfig, preset
from emf_bench.probe.tangents import attention, plain_attention
from emf_bench.probe.training_state import init_from_flow_matching


@pytest.mark.parametrize("name", sorted(PROBE_PRESETS))
def test_every_preset_builds_and_keeps_the_image_shape(name):
    config = preset(name, cond_dim=7, conditioning="both")
    model = build_model(config)
    z = torch.randn(2, 3, 32, 32)
    out = model(z, torch.rand(2), torch.zeros(2), torch.randn(2, 7), torch.randn(2, 5, 7),
                torch.ones(2, 5, dtype=torch.bool))
    assert out.shape == z.shape and torch.isfinite(out).all()


def test_only_the_layout_preset_and_the_cpu_studies_have_layout_maps():
    from emf_bench.study import PROFILES

    assert preset("cpu").unet_layout == 0  # they cost the quick budget's 1-step score
    assert preset("cpu-layout") == ProbeConfig(**{**vars(preset("cpu")), "unet_layout": 8})
    assert PROFILES["long"].size == PROFILES["quick"].size == "cpu-layout"
    with_maps = build_model(preset("cpu-layout", cond_dim=7))
    assert sum(p.numel() for p in with_maps.parameters()) > sum(
        p.numel() for p in build_model(preset("cpu", cond_dim=7)).parameters())


@pytest.mark.parametrize("arch", ["dit", "unet"])
@pytest.mark.parametrize("conditioning", ["pooled", "tokens", "both"])
def test_conditioning_reaches_the_output(arch, conditioning):
    config = ProbeConfig(arch=arch, image_size=16, cond_dim=6, width=32, depth=2, heads=2,
                         patch=4, unet_channels=(16, 32), conditioning=conditioning,
                         prediction="u")
    torch.manual_seed(0)
    model = build_model(config)
    perturb(model)
    z, t, r = torch.randn(2, 3, 16, 16), torch.full((2,), 0.7), torch.full((2,), 0.2)
    tokens, mask = torch.randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool)
    base = model(z, t, r, torch.zeros(2, 6), tokens, mask)
    other_pooled = model(z, t, r, torch.randn(2, 6), tokens, mask)
    other_tokens = model(z, t, r, torch.zeros(2, 6), torch.randn(2, 4, 6), mask)
    assert (not torch.allclose(base, other_pooled)) == (conditioning != "tokens")
    assert (not torch.allclose(base, other_tokens)) == (conditioning != "pooled")
    # Masked-out tokens change nothing.
    mask[:, 2:] = False
    noisy = tokens.clone()
    noisy[:, 2:] = 99.0
    torch.testing.assert_close(model(z, t, r, torch.zeros(2, 6), tokens, mask),
                               model(z, t, r, torch.zeros(2, 6), noisy, mask))
    # MeanFlow's two time embeddings: the interval t - r matters, not only t.
    assert not torch.allclose(base, model(z, t, torch.zeros(2), torch.zeros(2, 6), tokens, mask))


def test_plain_attention_matches_the_fused_kernel():
    q, k, v = (torch.randn(2, 3, 5, 8) for _ in range(3))
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    fused = attention(q, k, v, mask)
    with plain_attention():
        plain = attention(q, k, v, mask)
    torch.testing.assert_close(plain, fused, rtol=1e-5, atol=1e-5)


def test_the_jvp_accepts_channels_last_images():
    model = perturb(build_model(preset("tiny", cond_dim=5, prediction="x")))
    size = model.config.image_size
    z, v = (torch.randn(2, size, size, 3).permute(0, 3, 1, 2) for _ in range(2))  # strided
    t, pooled = torch.tensor([0.9, 0.5]), torch.randn(2, 5)

    def fn(a, b, c):
        return model(a, b, c, pooled)

    tangents = (v, torch.ones_like(t), torch.zeros_like(t))
    with plain_attention():
        _, strided = torch.func.jvp(fn, (z, t, t / 2), tangents)
        _, dense = torch.func.jvp(fn, (z.contiguous(), t, t / 2),
                                  tuple(x.contiguous() for x in tangents))
    torch.testing.assert_close(strided, dense)


def test_x_prediction_returns_the_clean_estimate_in_one_step():
    from emf_bench.probe.sampler import MeanFlowSampler

    config = ProbeConfig(arch="unet", image_size=8, cond_dim=3, width=16, unet_channels=(8, 16),
                         prediction="x")
    torch.manual_seed(0)
    model = build_model(config)
    perturb(model)
    z, pooled = torch.randn(2, 3, 8, 8), torch.randn(2, 3)
    estimate = model.net(z, torch.ones(2), torch.zeros(2), pooled)
    sample, _ = MeanFlowSampler().sample(model, z, pooled, steps=1)
    torch.testing.assert_close(sample, estimate)


def test_flow_matching_weights_initialise_both_time_embeddings():
    fm_config = ProbeConfig(arch="unet", image_size=8, cond_dim=3, width=16,
                            unet_channels=(8, 16), time="single")
    torch.manual_seed(0)
    fm = build_model(fm_config)
    mf = build_model(ProbeConfig(**{**fm_config.to_dict(), "time": "interval"}))
    init_from_flow_matching(mf, fm.state_dict())
    for name, value in fm.net.cond.time.state_dict().items():
        assert torch.equal(mf.net.cond.end.state_dict()[name], value)
        assert torch.equal(mf.net.cond.interval.state_dict()[name], value)
    torch.testing.assert_close(mf.net.inp.weight, fm.net.inp.weight)
    other = build_model(ProbeConfig(arch="dit", image_size=8, cond_dim=3, width=16, depth=1,
                                    heads=2, patch=4))
    with pytest.raises(EmfBenchError, match="does not fit"):
        init_from_flow_matching(other, fm.state_dict())
    wider = build_model(ProbeConfig(**{**fm_config.to_dict(), "width": 24, "time": "interval"}))
    with pytest.raises(EmfBenchError, match="does not fit"):
        init_from_flow_matching(wider, fm.state_dict())


@pytest.mark.parametrize("bad, message", [
    ({"arch": "vit"}, "unknown probe architecture 'vit'"),
    ({"conditioning": "pooling"}, "did you mean 'pooled'"),
    ({"arch": "dit", "image_size": 30, "patch": 4}, "not a multiple of patch"),
    ({"arch": "unet", "unet_layout": -1}, "number of layout maps"),
])
def test_bad_configs_are_named(bad, message):
    with pytest.raises(EmfBenchError, match=message):
        ProbeConfig(**bad)
    with pytest.raises(EmfBenchError, match="unknown probe size preset 'cpu-unet'"):
        preset("cpu-unet")
