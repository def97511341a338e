"""The math on CUDA gives what it gives on the CPU (skipped without a GPU)."""

import pytest
import torch

from ldlib.forward import diffuse
from ldlib.noise import NOISE_KINDS, downsample_noise
from ldlib.schedules import LayeredSchedule

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("kind", [k for k in NOISE_KINDS if k != "independent"])
def test_noise_on_cuda_matches_cpu(kind):
    e = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cpu = downsample_noise(e, 4, kind)
    gpu = downsample_noise(e.cuda(), 4, kind)
    assert gpu.is_cuda and torch.allclose(gpu.cpu(), cpu, atol=1e-5)


def test_diffuse_on_cuda():
    x0 = torch.rand(2, 3, 64, 64, device="cuda") * 2 - 1
    z, _, _ = diffuse(x0, torch.randn_like(x0), torch.tensor([0.2, 0.8]), LayeredSchedule.paper([16, 32, 64]))
    assert all(zi.is_cuda and torch.isfinite(zi).all() for zi in z)
