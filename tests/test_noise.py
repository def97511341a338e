"""Eq. (1): sinc noise downsampling keeps N(0, I); the alternatives behave as documented."""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from ldlib.noise import (
    NOISE_KINDS,
    axis_weights,
    bilinear_downsample,
    downsample_noise,
    noise_pyramid,
    sinc_downsample,
)
from ldlib.reproduction.noise_scaling import autocorrelation, max_offcentre, radial_power_spectrum, shared_with_top


def big_noise(gen, n=400, size=64):
    return torch.randn(n, 1, size, size, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("factor", [2, 4, 8, 16])
def test_sinc_unit_variance_white_gaussian(gen, factor):
    low = sinc_downsample(big_noise(gen), factor)
    assert low.shape[-1] == 64 // factor
    n = low.numel()
    # variance of a unit Gaussian estimated from n samples has sd sqrt(2/n)
    assert abs(low.var().item() - 1) < 5 * math.sqrt(2 / n)
    assert abs(low.mean().item()) < 5 / math.sqrt(n)
    assert max_offcentre(autocorrelation(low, 2)) < 5 / math.sqrt(n)
    sample = low.reshape(-1)[: 20000].numpy()
    assert stats.kstest(sample, "norm").pvalue > 1e-3
    assert abs(stats.kurtosis(low.reshape(-1).numpy())) < 0.1


def test_sinc_is_exactly_orthonormal_rows():
    # Exact statement behind the statistics: the 1-D operator has orthonormal rows, so Cov = W W^T = I.
    for n, f in [(64, 2), (64, 4), (48, 3), (30, 5), (64, 8)]:
        w = axis_weights("sinc", n, f)
        assert torch.allclose(w @ w.T, torch.eye(n // f, dtype=torch.float64), atol=1e-12)


def test_sinc_flat_spectrum(gen):
    _, power = radial_power_spectrum(sinc_downsample(big_noise(gen), 4))
    assert power.min() > 0.85 and power.max() < 1.15


def test_sinc_consistent_across_scales(gen):
    e = big_noise(gen, n=8)
    assert torch.allclose(sinc_downsample(sinc_downsample(e, 2), 2), sinc_downsample(e, 4), atol=1e-12)
    assert torch.allclose(sinc_downsample(sinc_downsample(e, 2), 4), sinc_downsample(e, 8), atol=1e-12)


def test_sinc_deterministic_and_dtype(gen):
    e = torch.randn(2, 3, 32, 32, generator=gen)
    a, b = sinc_downsample(e, 2), sinc_downsample(e, 2)
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert sinc_downsample(e.to(torch.bfloat16), 2).dtype == torch.bfloat16
    assert torch.equal(sinc_downsample(e, 1), e)


def test_sinc_is_block_centred_low_pass():
    # A band-limited periodic image is sampled exactly, at the centres of the 4x4 blocks (pixel 4m + 1.5).
    def f(y, x):
        return torch.sin(2 * math.pi * 3 * y / 64 + 0.3) * torch.cos(2 * math.pi * 2 * x / 64 - 1.0)

    grid = torch.arange(64, dtype=torch.float64)
    img = f(grid[:, None], grid[None, :])
    centres = 4 * torch.arange(16, dtype=torch.float64) + 1.5
    low = sinc_downsample(img, 4) / 4  # / T undoes the unit-variance scaling
    assert torch.allclose(low, f(centres[:, None], centres[None, :]), atol=1e-12)


def test_bilinear_matches_interpolate_and_is_correlated(gen):
    e = big_noise(gen, n=200)
    raw = bilinear_downsample(e, 4, normalize=False)
    ref = F.interpolate(e, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    assert torch.allclose(raw, ref, atol=1e-10)
    norm = bilinear_downsample(e, 4)
    assert abs(norm.var().item() - 1) < 0.05
    assert autocorrelation(norm, 1)[1, 2].item() > 0.15  # neighbours correlate: not white
    assert raw.var().item() < 0.1  # the raw filter shrinks the variance


def test_independent_is_unrelated_and_seeded(gen):
    e = big_noise(gen, n=200)
    a = downsample_noise(e, 2, "independent", torch.Generator().manual_seed(0))
    b = downsample_noise(e, 2, "independent", torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert abs(shared_with_top(a, e, 2)) < 0.02
    assert shared_with_top(sinc_downsample(e, 2), e, 2) > 0.7


def test_noise_pyramid_shapes_and_top_identity(gen):
    e = torch.randn(2, 3, 64, 64, generator=gen)
    for kind in NOISE_KINDS:
        levels = noise_pyramid(e, [16, 32, 64], kind, generator=gen)
        assert [l.shape[-1] for l in levels] == [16, 32, 64]
        assert levels[-1] is e


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda e: sinc_downsample(e, 3), "multiples"),
        (lambda e: sinc_downsample(e, 0), "positive integer"),
        (lambda e: sinc_downsample(e, 2.0), "positive integer"),
        (lambda e: downsample_noise(e, 2, "gaussian"), "unknown noise kind"),
        (lambda e: noise_pyramid(e, [32, 16]), "strictly increasing"),
        (lambda e: noise_pyramid(e, [16, 32]), "must be 32x32"),
        (lambda e: noise_pyramid(e, [24, 64]), "not divide"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call(torch.zeros(1, 1, 64, 64))
