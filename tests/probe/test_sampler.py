"""The MeanFlow sampler, checked as diffusers checks its flow-map scheduler."""

import pytest
import torch
from tests_shared import perturb
from torch import nn

from emf_bench.probe.model import build_model
from emf_bench.probe.presets import ProbeConfig
from emf_bench.probe.sampler import MeanFlowSampler


class ExactVelocity(nn.Module):
    """The true average velocity of the straight path from `x` to the noise: u = (z - x) / t.

    Along z_t = (1 - t) x + t e, the average velocity over any [r, t] is e - x, so every step
    count must land exactly on x. Counts its calls and the batch sizes it saw.
    """

    def __init__(self, x):
        super().__init__()
        self.x, self.calls, self.batches = x, 0, []

    def forward(self, z, t, r, pooled, tokens=None, mask=None):
        self.calls += 1
        self.batches.append(len(z))
        x = self.x.repeat(len(z) // len(self.x), 1, 1, 1)
        return (z - x) / t[:, None, None, None]


@pytest.mark.parametrize("steps", [1, 2, 4, 8, 16])
def test_every_step_count_reaches_the_data_endpoint(steps):
    g = torch.Generator().manual_seed(0)
    x, noise = torch.randn(3, 3, 8, 8, generator=g), torch.randn(3, 3, 8, 8, generator=g)
    model = ExactVelocity(x)
    sampler = MeanFlowSampler()
    sampler.set_timesteps(steps)
    assert sampler.timesteps[0] == 1 and sampler.timesteps[-1] == 0
    assert len(sampler.timesteps) == steps + 1
    assert (sampler.timesteps[1:] < sampler.timesteps[:-1]).all()
    out, record = sampler.sample(model, noise, torch.zeros(3, 4), steps=steps)
    torch.testing.assert_close(out, x, rtol=1e-5, atol=1e-5)
    assert record.steps == steps and record.network_evaluations == steps == model.calls
    assert record.guidance_mode == "none"


def test_a_zero_interval_is_the_identity_and_shape_and_dtype_are_kept():
    sample = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    u = torch.randn_like(sample)
    assert torch.equal(MeanFlowSampler.step(u, 0.3, sample, 0.3), sample)
    stepped = MeanFlowSampler.step(u, 0.7, sample, 0.2)
    assert stepped.shape == sample.shape and stepped.dtype == torch.float64
    torch.testing.assert_close(stepped, sample - 0.5 * u)


def probe(**kw):
    config = ProbeConfig(arch="unet", image_size=8, cond_dim=5, width=32, unet_channels=(8, 16),
                         **kw)
    torch.manual_seed(0)
    model = build_model(config).eval()
    perturb(model)  # zero-initialised outputs would make every sample the noise
    return model


def test_guidance_one_equals_the_unguided_sample_and_other_scales_batch_both_passes():
    model = probe()
    noise, pooled = torch.randn(4, 3, 8, 8), torch.randn(4, 5)
    sampler = MeanFlowSampler()
    plain, record = sampler.sample(model, noise, pooled, steps=2)
    same, _ = sampler.sample(model, noise, pooled, steps=2, guidance=1.0)
    assert torch.equal(plain, same) and record.forward_calls == 2

    counter = ExactVelocity(torch.zeros(4, 3, 8, 8))
    counter.cond = model.cond
    _, record = sampler.sample(counter, noise, pooled, steps=2, guidance=3.0)
    assert counter.batches == [8, 8]  # conditional and null rows in one batched call per step
    assert record.network_evaluations == 4 and record.forward_calls == 2
    assert record.guidance_mode == "cfg-batched" and record.guidance == 3.0

    guided, _ = sampler.sample(model, noise, pooled, steps=2, guidance=3.0)
    assert not torch.allclose(guided, plain)
    # u = u_null + w (u_cond - u_null), from separate passes.
    t, r = torch.ones(4), torch.zeros(4)
    null_pooled, _ = model.cond.apply_null(pooled, None, torch.ones(4, dtype=torch.bool))
    u_cond, u_null = model(noise, t, r, pooled), model(noise, t, r, null_pooled)
    one_step, _ = sampler.sample(model, noise, pooled, steps=1, guidance=3.0)
    torch.testing.assert_close(one_step, noise - (u_null + 3.0 * (u_cond - u_null)),
                               rtol=1e-4, atol=1e-5)


def test_learned_null_condition_replaces_dropped_rows_only():
    model = probe(null="learned")
    with torch.no_grad():
        model.cond.null_embedding.fill_(0.5)
    pooled = torch.randn(3, 5)
    out, _ = model.cond.apply_null(pooled, None, torch.tensor([False, True, False]))
    assert torch.equal(out[0], pooled[0]) and torch.equal(out[2], pooled[2])
    assert torch.equal(out[1], torch.full((5,), 0.5))
