"""Measurements behind the schedule-shifting figures (section 2.3, Figs. A.3-A.4): how much of an image's
coarse structure survives in each layer's noisy input at a shared t."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .forward import diffuse
from .noise import sinc_downsample
from .pyramid import downsample
from .schedules import LayeredSchedule


def _corr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def structure_survival(
    x0: torch.Tensor,
    schedule: LayeredSchedule,
    ts: Sequence[float],
    n_noise: int = 4,
    noise_kind: str = "sinc",
    generator: torch.Generator | None = None,
) -> dict[int, np.ndarray]:
    """For each resolution i: the correlation between LP(z_{t,i}) and D(x0, base), averaged over the images
    in ``x0`` and ``n_noise`` noise draws, at every t in ``ts``. It measures the coarse structure a layer's
    input still carries; 1 is a clean image, 0 pure noise.

    LP is the ideal low-pass down to the base grid (``sinc_downsample``): it keeps exactly the base band of
    the noise (variance / T^2), the premise of simple diffusion's shift rule. Measuring through the image
    pyramid's bilinear filter D instead would remove more noise than the ideal filter (see
    :func:`pyramid_noise_gain`) and flatter the finer layers."""
    base = schedule.resolutions[0]
    target = downsample(x0, base)
    out = {r: np.zeros(len(ts)) for r in schedule.resolutions}
    for _ in range(n_noise):
        eps0 = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        for j, t in enumerate(ts):
            z, _, _ = diffuse(x0, eps0, float(t), schedule, noise_kind)
            for r, zi in zip(schedule.resolutions, z):
                low = sinc_downsample(zi, r // base)
                out[r][j] += _corr_per_image(low, target).mean().item() / n_noise
    return out


def first_t_below(ts: Sequence[float], values: np.ndarray, threshold: float) -> float:
    """The first t (linearly interpolated) at which a decreasing curve falls below ``threshold``."""
    ts = np.asarray(ts, dtype=float)
    below = np.nonzero(values < threshold)[0]
    if len(below) == 0:
        return float("nan")
    j = below[0]
    if j == 0:
        return float(ts[0])
    v0, v1 = values[j - 1], values[j]
    return float(ts[j - 1] + (v0 - threshold) / (v0 - v1) * (ts[j] - ts[j - 1]))


def pyramid_noise_gain(resolution: int, factor: int, n: int = 256, generator: torch.Generator | None = None) -> float:
    """Variance left when white unit noise at ``resolution`` is downsampled by ``factor`` with the image
    pyramid's filter D (an ideal low-pass would leave exactly 1 / factor**2)."""
    eps = torch.randn(n, 1, resolution, resolution, generator=generator, dtype=torch.float64)
    return downsample(eps, resolution // factor).var().item()
