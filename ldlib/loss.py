"""The training objective of eq. (3):

    E_{x0, c, eps0, t} [ w_t sum_i w_i || x_hat_i(alpha_{t,i} D(x0, i) + sigma_{t,i} S(eps0, i), c) - D(x0, i) ||^2 ]

``training_inputs`` builds the noisy inputs z_i and the targets D(x0, i) (optionally cropped, section 3.1);
``layered_loss`` weighs each resolution's mean squared error by w_i (``DiffusionConfig.loss_weighting``)
and each sample by w_t (``DiffusionConfig.time_weighting``). ``generator`` seeds only the draws of
``noise_kind="independent"``; without one they come from torch's global generator.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .config import DiffusionConfig
from .crop import CropBox
from .forward import diffuse


def resolution_weights(cfg: DiffusionConfig) -> list[float]:
    """w_i of eq. (3): the paper scales each resolution's loss "with respect to resolution scale"."""
    top = cfg.resolutions[-1]
    if cfg.loss_weighting == "uniform":
        return [1.0] * len(cfg.resolutions)
    power = 1 if cfg.loss_weighting == "resolution" else 2
    return [(r / top) ** power for r in cfg.resolutions]


def training_inputs(
    x0: torch.Tensor,
    eps0: torch.Tensor,
    t: torch.Tensor,
    cfg: DiffusionConfig,
    crops: Sequence[CropBox | None] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Noisy inputs z_i and targets D(x0, i), base first; cropped level by level when ``crops`` is given."""
    z, targets, _ = diffuse(x0, eps0, t, cfg.schedule, cfg.noise_kind, generator)
    if crops is not None:
        z = [c.apply(v) if c is not None else v for c, v in zip(crops, z)]
        targets = [c.apply(v) if c is not None else v for c, v in zip(crops, targets)]
    return z, targets


def layered_loss(
    pred: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], t: torch.Tensor, cfg: DiffusionConfig
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The weighted sum of eq. (3) and each resolution's term before its w_i: the mean squared error,
    already multiplied by w_t when ``time_weighting`` is ``min_snr`` (unweighted only with ``none``)."""
    weights = resolution_weights(cfg)
    logsnrs = cfg.schedule.logsnr(t.float())
    total = pred[0].new_zeros((), dtype=torch.float32)
    per_level = []
    for p, x, w, logsnr in zip(pred, targets, weights, logsnrs):
        mse = (p.float() - x.float()).square().mean(dim=(1, 2, 3))
        if cfg.time_weighting == "min_snr":
            mse = mse * logsnr.to(mse.device).exp().clamp(max=5.0)
        total = total + w * mse.mean()
        per_level.append(mse.mean().detach())
    return total, per_level
