"""The samplers (DDIM, DDPM, DPM-Solver++(2M)) on the layered state: the textbook updates at K = 1, the forward
process recovered with an oracle x-prediction at K = 3, and determinism."""

import math

import pytest
import torch

from ldlib.config import DiffusionConfig
from ldlib.data.text import HashTextEncoder
from ldlib.noise import noise_pyramid
from ldlib.pyramid import image_pyramid
from ldlib.sampler import METHODS, sample
from ldlib.schedules import alpha_sigma

TEXT = HashTextEncoder().encode(["a red circle", "a blue square"])


class Recording(torch.nn.Module):
    """A stand-in network: ``predict(z, t) -> [x_hat_i]``; records the top-resolution inputs it was called with."""

    def __init__(self, predict):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the sampler reads the device off a parameter
        self.predict, self.inputs = predict, []

    def forward(self, z, t, tokens, mask, pooled, keep=None):
        self.inputs.append([v.clone() for v in z])
        return self.predict(z, t)


def smooth(z, t):
    """A deterministic, input-dependent prediction at every level (not the truth: the steps differ by method)."""
    return [torch.tanh(0.7 * v + 0.3 * t.view(-1, 1, 1, 1)) for v in z]


def textbook_dpmpp_2m(predict, eps, schedule, steps):
    """DPM-Solver++(2M) as printed (Lu et al. 2022, Alg. 2) for one resolution, uniform in t, first order at the
    last step; the state x starts at sigma(1) * eps (the sampler's x_hat = 0). Returns the states visited."""
    times = torch.linspace(1.0, 0.0, steps + 1)
    lam = [float(l) / 2 for l in schedule.logsnr(times.double())[0]]
    (_, s1), = schedule.alpha_sigma(times[0])
    x, xs, prev, h_prev = s1 * eps, [], None, None
    for i in range(steps):
        xs.append(x)
        x0 = predict([x], times[i].expand(len(x)))[0].clamp(-1, 1)
        h = lam[i + 1] - lam[i]
        d = x0 if prev is None or i == steps - 1 else (1 + h / (2 * h_prev)) * x0 - h / (2 * h_prev) * prev
        (_, s_t), = schedule.alpha_sigma(times[i])
        (a_s, s_s), = schedule.alpha_sigma(times[i + 1])
        x = (s_s / s_t) * x - a_s * math.expm1(-h) * d
        prev, h_prev = x0, h
    return xs


def test_dpmpp_2m_with_one_resolution_is_the_textbook_update():
    diff = DiffusionConfig((32,), (0.0,))
    model = Recording(smooth)
    sample(model, diff, TEXT, steps=6, guidance=1.0, method="dpmpp_2m", seed=3)
    eps = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    expected = textbook_dpmpp_2m(smooth, eps, diff.schedule, 6)
    seen = [z[0] for z in model.inputs]
    assert len(seen) == 6
    for got, want in zip(seen, expected):
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)


def test_dpmpp_2m_differs_from_ddim_only_after_its_first_step():
    diff = DiffusionConfig.paper((16, 32, 64))
    a, b = Recording(smooth), Recording(smooth)
    sample(a, diff, TEXT, steps=4, guidance=2.0, method="ddim", seed=1)
    sample(b, diff, TEXT, steps=4, guidance=2.0, method="dpmpp_2m", seed=1)
    assert all(torch.equal(u, v) for u, v in zip(a.inputs[1], b.inputs[1]))  # step 2 input: first order both
    assert not torch.allclose(a.inputs[2][-1], b.inputs[2][-1], atol=1e-4)  # step 3: the 2M correction acts


@pytest.mark.parametrize("method", METHODS)
def test_oracle_prediction_returns_x0_and_follows_the_forward_process(method):
    """With the true x0 as every head's prediction, each sampler returns x0, and the deterministic ones feed
    the network exactly eq. (3)'s z_i = alpha_i D(x0, i) + sigma_i S(eps, i) for one fixed eps at every step."""
    res = (16, 32, 64)
    diff = DiffusionConfig.paper(res)
    x0 = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 2 - 1
    truth = image_pyramid(x0, res)

    def oracle(z, t):
        return [v.repeat(z[0].shape[0] // len(x0), 1, 1, 1) for v in truth]

    model = Recording(oracle)
    out = sample(model, diff, TEXT, steps=5, guidance=3.0, method=method, seed=0)
    for got, want in zip(out.images, truth):
        assert torch.allclose(got, want, atol=1e-6)
    if method == "ddpm":
        return
    times = torch.linspace(1.0, 0.0, 6)
    (a1, s1) = diff.schedule.alpha_sigma(times[0])[-1]
    eps = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) - (a1 / s1) * x0  # x_hat = 0 at t = 1
    for step, z in enumerate(model.inputs[1:], start=1):
        noises = noise_pyramid(eps, res)
        for level, (a, s) in enumerate(diff.schedule.alpha_sigma(times[step])):
            want = a * truth[level] + s * noises[level]
            assert torch.allclose(z[level][:2], want, atol=1e-5), (method, step, level)


@pytest.mark.parametrize("method", ["ddim", "dpmpp_2m"])
def test_independent_noise_keeps_each_levels_noise_along_the_trajectory(method):
    """Under independent noise every level carries its own noise state: with the true x0 predicted, each
    level's noise (z_i - alpha_i D(x0, i)) / sigma_i is the same at every step, as the top level's is (before,
    the lower levels were redrawn at every step). The lower levels' noise is not derived from the top's."""
    res = (16, 32, 64)
    diff = DiffusionConfig.paper(res, noise_kind="independent")
    x0 = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 2 - 1
    truth = image_pyramid(x0, res)
    model = Recording(lambda z, t: [v.repeat(z[0].shape[0] // len(x0), 1, 1, 1) for v in truth])
    out = sample(model, diff, TEXT, steps=5, guidance=3.0, method=method, seed=0)
    assert all(torch.allclose(got, want, atol=1e-6) for got, want in zip(out.images, truth))
    times = torch.linspace(1.0, 0.0, 6)
    noise = [[(z[k][:2] - a * truth[k]) / s for k, (a, s) in enumerate(diff.schedule.alpha_sigma(times[step]))]
             for step, z in enumerate(model.inputs[1:], start=1)]
    for step in noise[1:]:
        for level in range(3):
            assert torch.allclose(step[level], noise[0][level], atol=1e-4), level
    derived = noise_pyramid(noise[0][-1], res)  # what sinc noise would have given the lower levels
    assert not torch.allclose(noise[0][0], derived[0], atol=0.1)


@pytest.mark.parametrize("method", METHODS)
def test_samplers_are_deterministic_given_the_seed(method):
    diff = DiffusionConfig.paper((16, 32))
    run = lambda seed: sample(Recording(smooth), diff, TEXT, steps=3, guidance=2.0, method=method, seed=seed).top  # noqa: E731
    assert torch.equal(run(4), run(4))
    assert not torch.equal(run(4), run(5))


@pytest.mark.parametrize("method", METHODS)
def test_sampling_builds_no_autograd_graph(method):
    """The network runs without autograd: a graph kept through the trajectory grows with every step (at 64 px and
    three levels it filled 24 GiB and killed the kernel)."""
    grad_on = []

    def predict(z, t):
        grad_on.append(torch.is_grad_enabled())
        return [v * net.anchor for v in z]  # depends on a parameter that requires grad

    net = Recording(predict)
    out = sample(net, DiffusionConfig.paper((16, 32)), TEXT, steps=3, guidance=2.0, method=method)
    assert grad_on and not any(grad_on)
    assert not any(x.requires_grad for x in out.images)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="dpmpp_2m"):
        sample(Recording(smooth), DiffusionConfig.paper((16,)), TEXT, steps=2, method="euler")


def test_alpha_sigma_is_variance_preserving():
    a, s = alpha_sigma(torch.linspace(-10, 10, 11))
    assert torch.allclose(a**2 + s**2, torch.ones(11))
