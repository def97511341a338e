"""D(x0, i) of eq. (3): the anti-aliased bilinear image pyramid.

The paper downsamples the highest-resolution image x0 directly to every lower resolution with bilinear
interpolation (section 2.2, eq. 3). Plain bilinear interpolation aliases when shrinking by more than 2,
so we use the anti-aliased variant (a triangle filter widened by the factor), the same filter that
``ldlib.noise.bilinear_downsample`` applies to noise.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def check_resolutions(resolutions: Sequence[int]) -> list[int]:
    """Validate a pyramid's resolutions: positive, strictly increasing, each dividing the top one."""
    res = [int(r) for r in resolutions]
    if not res or any(r < 1 for r in res) or any(a >= b for a, b in zip(res, res[1:])):
        raise ValueError(f"resolutions must be positive and strictly increasing (base first), got {list(resolutions)}")
    bad = [r for r in res if res[-1] % r]
    if bad:
        raise ValueError(f"resolutions {bad} do not divide the top resolution {res[-1]}")
    return res


def downsample(image: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased bilinear resize of ``(B, C, H, W)`` images to ``size x size`` (D of eq. 3)."""
    if image.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(image.shape)}")
    if image.shape[-2:] == (size, size):
        return image
    work = image if image.dtype in (torch.float32, torch.float64) else image.float()
    out = F.interpolate(work, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.to(image.dtype)


def image_pyramid(x0: torch.Tensor, resolutions: Sequence[int]) -> list[torch.Tensor]:
    """[D(x0, i) for each resolution], base first; every level is taken from x0 directly, as in eq. (3)."""
    res = check_resolutions(resolutions)
    if x0.shape[-2:] != (res[-1], res[-1]):
        raise ValueError(f"x0 must be {res[-1]}x{res[-1]} for resolutions {res}, got {tuple(x0.shape[-2:])}")
    return [downsample(x0, r) for r in res]
