"""The forward (noising) process of eq. (3) for a layered model.

    z_i = alpha_{t,i} * D(x0, i) + sigma_{t,i} * S(eps0, i)

with one t shared by every resolution, D the bilinear image pyramid (``ldlib.pyramid``), S the noise
downsampling (``ldlib.noise``, sinc by default) and alpha, sigma from the per-resolution shifted schedules
(``ldlib.schedules.LayeredSchedule``).
"""

from __future__ import annotations

import torch

from .noise import noise_pyramid
from .pyramid import image_pyramid
from .schedules import LayeredSchedule


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    v = v.to(device=like.device, dtype=like.dtype)
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


def diffuse(
    x0: torch.Tensor,
    eps0: torch.Tensor,
    t,
    schedule: LayeredSchedule,
    noise_kind: str = "sinc",
    generator: torch.Generator | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Noise top-resolution images ``x0`` (B, C, R, R) with top-resolution noise ``eps0`` at time ``t``
    (a scalar or one value per image) for every resolution of ``schedule``.

    Returns ``(z, targets, noises)``: the noisy inputs z_i, the clean targets D(x0, i) and the noises
    S(eps0, i), each a list from base to top.
    """
    if eps0.shape != x0.shape:
        raise ValueError(f"eps0 must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps0.shape)}")
    targets = image_pyramid(x0, schedule.resolutions)
    noises = noise_pyramid(eps0, schedule.resolutions, kind=noise_kind, generator=generator)
    t = torch.as_tensor(t, dtype=torch.float32)
    z = []
    for x, e, (alpha, sigma) in zip(targets, noises, schedule.alpha_sigma(t)):
        z.append(_per_sample(alpha, x) * x + _per_sample(sigma, x) * e)
    return z, targets, noises
