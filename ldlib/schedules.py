"""Cosine log-SNR schedules and their per-resolution shifts (section 2.3; simple diffusion, Hoogeboom et
al. 2023, section 3).

Time runs from t = 0 (clean data, high log-SNR) to t = 1 (pure noise, low log-SNR). A variance-preserving
forward process ``z = alpha * x + sigma * eps`` has ``logsnr = log(alpha**2 / sigma**2)`` and
``alpha**2 + sigma**2 = 1``.

Shifts are added to the log-SNR: a shift of ``log(1/8)`` divides the signal-to-noise ratio by 8 at every t,
so image structure at that resolution appears later in sampling (the paper's "delay"). Simple diffusion's
rule for a resolution ``d`` trained against a reference ``d0`` is ``shift = 2 * log(d0 / d)``; the paper's
choices relative to its 128 px base are ``log(1/8)`` at 256 px and ``log(1/32)`` at 512 px (section 2.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

LOGSNR_MIN = -15.0
LOGSNR_MAX = 15.0

#: The paper's shifts (section 2.3, Fig. A.5) keyed by the ratio of a layer's resolution to the base one.
PAPER_SHIFTS = {1: 0.0, 2: math.log(1 / 8), 4: math.log(1 / 32)}


def _as_tensor(t) -> torch.Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def cosine_logsnr(t, logsnr_min: float = LOGSNR_MIN, logsnr_max: float = LOGSNR_MAX) -> torch.Tensor:
    """The cosine schedule in log-SNR form, ``-2 log tan(pi t / 2)``, rescaled in t so that it runs from
    exactly ``logsnr_max`` at t = 0 to ``logsnr_min`` at t = 1 (simple diffusion's ``logsnr_schedule_cosine``).
    """
    if not logsnr_min < logsnr_max:
        raise ValueError(f"need logsnr_min < logsnr_max, got {logsnr_min} and {logsnr_max}")
    t = _as_tensor(t)
    a = math.atan(math.exp(-0.5 * logsnr_max))
    b = math.atan(math.exp(-0.5 * logsnr_min))
    return -2.0 * torch.log(torch.tan(a + t * (b - a)))


def shifted_cosine_logsnr(t, shift: float, **limits) -> torch.Tensor:
    """The cosine schedule with ``shift`` added to its log-SNR (``shift = log(1/8)`` delays it; eq. 3's
    per-resolution alpha_{t,i}, sigma_{t,i} come from this)."""
    return cosine_logsnr(t, **limits) + shift


def alpha_sigma(logsnr) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, sigma)`` of a variance-preserving process with this log-SNR:
    ``alpha**2 = sigmoid(logsnr)``, ``sigma**2 = sigmoid(-logsnr)``."""
    logsnr = _as_tensor(logsnr)
    return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()


def simple_diffusion_shift(resolution: int, reference: int) -> float:
    """Simple diffusion's shift for a ``resolution`` image trained like a ``reference`` one: 2 log(ref/res)."""
    return 2.0 * math.log(reference / resolution)


def paper_shift(ratio: int) -> float:
    """The paper's shift for a layer ``ratio`` times the base resolution (section 2.3)."""
    if ratio not in PAPER_SHIFTS:
        raise ValueError(
            f"the paper reports shifts only for resolution ratios {sorted(PAPER_SHIFTS)} to the base, "
            f"not {ratio}; pass explicit shifts instead"
        )
    return PAPER_SHIFTS[ratio]


@dataclass(frozen=True)
class LayeredSchedule:
    """Per-resolution shifted cosine schedules sharing one t (section 2.3, eq. 3).

    ``resolutions`` in pixels (base first) and ``shifts`` in nats of log-SNR, one per resolution.
    """

    resolutions: tuple[int, ...]
    shifts: tuple[float, ...]
    logsnr_min: float = LOGSNR_MIN
    logsnr_max: float = LOGSNR_MAX

    def __post_init__(self) -> None:
        if len(self.resolutions) != len(self.shifts):
            raise ValueError(
                f"one shift per resolution needed: {len(self.resolutions)} resolutions, {len(self.shifts)} shifts"
            )
        if not self.resolutions or any(a >= b for a, b in zip(self.resolutions, self.resolutions[1:])):
            raise ValueError(f"resolutions must be strictly increasing, got {self.resolutions}")

    @classmethod
    def paper(cls, resolutions: Sequence[int]) -> "LayeredSchedule":
        """The paper's shifts, applied by resolution ratio to the base (0, log 1/8, log 1/32)."""
        res = tuple(int(r) for r in resolutions)
        if any(r % res[0] for r in res):
            raise ValueError(f"every resolution must be a multiple of the base {res[0]}, got {res}")
        return cls(res, tuple(paper_shift(r // res[0]) for r in res))

    @classmethod
    def simple_diffusion(cls, resolutions: Sequence[int]) -> "LayeredSchedule":
        """Simple diffusion's rule with the base resolution as reference: shift_i = 2 log(base / res_i)."""
        res = tuple(int(r) for r in resolutions)
        return cls(res, tuple(simple_diffusion_shift(r, res[0]) for r in res))

    @classmethod
    def unshifted(cls, resolutions: Sequence[int]) -> "LayeredSchedule":
        res = tuple(int(r) for r in resolutions)
        return cls(res, (0.0,) * len(res))

    def logsnr(self, t) -> list[torch.Tensor]:
        """log-SNR of every resolution at the shared time ``t`` (any shape), base first."""
        limits = dict(logsnr_min=self.logsnr_min, logsnr_max=self.logsnr_max)
        return [shifted_cosine_logsnr(t, s, **limits) for s in self.shifts]

    def alpha_sigma(self, t) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(alpha_{t,i}, sigma_{t,i})`` of eq. (3) for every resolution, base first."""
        return [alpha_sigma(l) for l in self.logsnr(t)]


def cosine_t_at_logsnr(logsnr: float, shift: float = 0.0, logsnr_min: float = LOGSNR_MIN, logsnr_max: float = LOGSNR_MAX) -> float:
    """The t at which the shifted cosine schedule reaches ``logsnr`` (inverse of
    :func:`shifted_cosine_logsnr`), clipped to [0, 1]."""
    a = math.atan(math.exp(-0.5 * logsnr_max))
    b = math.atan(math.exp(-0.5 * logsnr_min))
    t = (math.atan(math.exp(-0.5 * (logsnr - shift))) - a) / (b - a)
    return min(1.0, max(0.0, t))
