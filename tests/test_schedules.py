"""Section 2.3: cosine log-SNR schedules, shifts, interpolation direction, per-resolution schedules."""

import math

import pytest
import torch

from ldlib.reproduction import paper_numbers as paper
from ldlib.schedules import (
    LOGSNR_MAX,
    LOGSNR_MIN,
    LayeredSchedule,
    alpha_sigma,
    cosine_logsnr,
    cosine_t_at_logsnr,
    shifted_cosine_logsnr,
)

T = torch.linspace(0, 1, 1001, dtype=torch.float64)


def test_cosine_endpoints_midpoint_monotone():
    l = cosine_logsnr(T)
    assert l[0].item() == pytest.approx(LOGSNR_MAX, abs=1e-9)
    assert l[-1].item() == pytest.approx(LOGSNR_MIN, abs=1e-9)
    assert l[500].item() == pytest.approx(0.0, abs=1e-9)
    assert (l[1:] < l[:-1]).all()


def test_cosine_is_minus_two_log_tan_inside_limits():
    t = torch.tensor([0.3, 0.5, 0.7], dtype=torch.float64)
    wide = cosine_logsnr(t, logsnr_min=-80, logsnr_max=80)
    assert torch.allclose(wide, -2 * torch.log(torch.tan(math.pi * t / 2)), atol=1e-9)


def test_shift_is_added_and_delays():
    s = math.log(1 / 8)
    assert torch.allclose(shifted_cosine_logsnr(T, s) - cosine_logsnr(T), torch.full_like(T, s))
    # The SNR is divided by 8 everywhere: log-SNR 0 is reached earlier in t.
    assert cosine_t_at_logsnr(0.0, s) < cosine_t_at_logsnr(0.0, 0.0) == pytest.approx(0.5)


def test_t_at_logsnr_inverts_schedule():
    for shift in (0.0, math.log(1 / 8), math.log(1 / 32)):
        for target in (-5.0, 0.0, 3.0):
            t = cosine_t_at_logsnr(target, shift)
            assert shifted_cosine_logsnr(torch.tensor(t, dtype=torch.float64), shift).item() == pytest.approx(target, abs=1e-6)


def test_alpha_sigma_variance_preserving():
    for l in (cosine_logsnr(T), shifted_cosine_logsnr(T, math.log(1 / 32))):
        a, s = alpha_sigma(l)
        assert torch.allclose(a**2 + s**2, torch.ones_like(a), atol=1e-12)
        assert torch.allclose(torch.log(a**2 / s**2), l, atol=1e-6)
        assert (a[1:] <= a[:-1]).all()


def test_layered_schedules():
    res = [128, 256, 512]
    p = LayeredSchedule.paper(res)
    assert p.shifts == pytest.approx((0.0, paper.SHIFTS[256], paper.SHIFTS[512]))
    sd = LayeredSchedule.simple_diffusion(res)
    assert sd.shifts == pytest.approx((0.0, math.log(1 / 4), math.log(1 / 16)))
    t = torch.rand(5, dtype=torch.float64)
    for level, l in zip(range(3), p.logsnr(t)):
        assert torch.allclose(l, shifted_cosine_logsnr(t, p.shifts[level]))
    assert len(p.alpha_sigma(t)) == 3
    assert LayeredSchedule.paper([16, 32, 64]).shifts == p.shifts  # by ratio, not absolute size


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LayeredSchedule((64, 128), (0.0,)), "one shift per resolution"),
        (lambda: LayeredSchedule((128, 64), (0.0, 0.0)), "strictly increasing"),
        (lambda: LayeredSchedule.paper([64, 512]), "ratios"),
        (lambda: LayeredSchedule.paper([64, 96]), "multiple of the base"),
        (lambda: cosine_logsnr(0.5, logsnr_min=5, logsnr_max=-5), "logsnr_min < logsnr_max"),
    ],
)
def test_schedule_bad_inputs(make, match):
    with pytest.raises(ValueError, match=match):
        make()
