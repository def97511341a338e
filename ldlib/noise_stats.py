"""Statistics that decide whether downsampled noise is still N(0, I) noise (section 2.2, Fig. A.2).

A valid noise for the lower resolutions of eq. (3) must have unit variance (else alpha, sigma no longer give
the intended log-SNR), be white (no spatial correlation: the model is trained on white noise) and be
Gaussian. These functions measure each property on a batch of noise fields ``(N, ..., H, W)`` whose first
dimension indexes independent draws.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from scipy import stats

from .noise import NOISE_KINDS, downsample_noise


def _fields(x: torch.Tensor) -> torch.Tensor:
    """Flatten ``(N, ..., H, W)`` to ``(N * ..., H, W)`` float64 fields."""
    return x.detach().to(torch.float64).reshape(-1, x.shape[-2], x.shape[-1])


def variance_ci(x: torch.Tensor, z: float = 1.96) -> tuple[float, float, float]:
    """Pixel variance about zero with a normal-approximation confidence interval over independent fields."""
    per_field = _fields(x).square().mean(dim=(-2, -1))
    m = per_field.mean().item()
    half = z * per_field.std().item() / math.sqrt(per_field.numel())
    return m, m - half, m + half


def autocorrelation(x: torch.Tensor, max_lag: int = 3) -> torch.Tensor:
    """Circular spatial autocorrelation for lags ``-max_lag..max_lag`` in both axes, normalised so the
    centre (lag 0) is 1. White noise has zeros everywhere else."""
    f = _fields(x)
    h, w = f.shape[-2:]
    power = torch.fft.fft2(f).abs().square().mean(dim=0)
    acov = torch.fft.ifft2(power).real / (h * w)
    acov = torch.fft.fftshift(acov)
    cy, cx = h // 2, w // 2
    lag = min(max_lag, cy, cx)
    window = acov[cy - lag : cy + lag + 1, cx - lag : cx + lag + 1]
    return (window / acov[cy, cx]).float()


def max_offcentre(acorr: torch.Tensor) -> float:
    """Largest |autocorrelation| at a non-zero lag."""
    a = acorr.clone()
    c = a.shape[0] // 2
    a[c, c] = 0
    return a.abs().max().item()


def radial_power_spectrum(x: torch.Tensor, bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum averaged over fields and rings of equal spatial frequency.

    Returns ``(frequency, power)`` with frequency in cycles per pixel (0 to 0.5) and power normalised so
    that white noise of unit variance has power 1 at every frequency.
    """
    f = _fields(x)
    h, w = f.shape[-2:]
    power = torch.fft.fft2(f, norm="ortho").abs().square().mean(dim=0).numpy()
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    radius = np.sqrt(fy**2 + fx**2).ravel()
    bins = bins or min(h, w) // 2
    edges = np.linspace(0, 0.5, bins + 1)
    idx = np.digitize(radius, edges) - 1
    keep = (idx >= 0) & (idx < bins)
    total = np.bincount(idx[keep], weights=power.ravel()[keep], minlength=bins)
    count = np.bincount(idx[keep], minlength=bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ok = count > 0
    return centres[ok], total[ok] / count[ok]


def normality(
    x: torch.Tensor, n: int = 5000, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Is the marginal distribution N(0, 1)? Kolmogorov-Smirnov against N(0, 1) (so a wrong variance
    fails too) on ``n`` randomly chosen pixels, plus skewness and excess kurtosis (both 0 for a Gaussian)."""
    flat = x.detach().reshape(-1).to(torch.float64)
    pick = torch.randperm(flat.numel(), generator=generator)[: min(n, flat.numel())]
    sample = flat[pick].numpy()
    ks = stats.kstest(sample, "norm")
    return {
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "skewness": float(stats.skew(flat.numpy())),
        "excess_kurtosis": float(stats.kurtosis(flat.numpy())),
    }


def shared_with_top(low: torch.Tensor, top: torch.Tensor, factor: int) -> float:
    """Correlation between each low-resolution noise pixel and the mean of the ``factor x factor`` block of
    top-resolution noise it covers (rescaled to unit variance): how much of the low-resolution noise is
    the high-resolution noise seen from afar. 0 for independent noise."""
    t = _fields(top)
    n, h, w = t.shape
    block = t.reshape(n, h // factor, factor, w // factor, factor).mean(dim=(2, 4)) * factor
    lo = _fields(low)
    return torch.corrcoef(torch.stack([lo.reshape(-1), block.reshape(-1)]))[0, 1].item()


def cross_scale_gap(noise: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> float:
    """RMS difference between downsampling by 2 twice and by 4 at once (0 means exactly consistent)."""
    twice = downsample_noise(downsample_noise(noise, 2, kind, generator), 2, kind, generator)
    once = downsample_noise(noise, 4, kind, generator)
    return (twice - once).to(torch.float64).square().mean().sqrt().item()


def noise_report(
    top_noise: torch.Tensor,
    factors: Sequence[int],
    kinds: Sequence[str] = NOISE_KINDS,
    generator: torch.Generator | None = None,
) -> list[dict]:
    """One row of statistics per (noise kind, factor) for top-resolution noise ``(N, C, R, R)``."""
    rows = []
    for kind in kinds:
        for factor in factors:
            low = downsample_noise(top_noise, factor, kind, generator)
            var, lo, hi = variance_ci(low)
            acorr = autocorrelation(low)
            c = acorr.shape[0] // 2
            freq, power = radial_power_spectrum(low)
            rows.append(
                {
                    "kind": kind,
                    "factor": factor,
                    "resolution": low.shape[-1],
                    "n_pixels": low.numel(),
                    "variance": var,
                    "variance_ci": (lo, hi),
                    "lag1_corr": 0.5 * (acorr[c, c + 1] + acorr[c + 1, c]).item(),
                    "max_offcentre_corr": max_offcentre(acorr),
                    "spectrum_min": float(power.min()),
                    "spectrum_max": float(power.max()),
                    "shared_with_top": shared_with_top(low, top_noise, factor),
                    **normality(low, generator=generator),
                }
            )
    return rows


def report_markdown(rows: Sequence[dict]) -> str:
    """The rows of :func:`noise_report` as a Markdown table."""
    head = ("| noise | factor | px | variance [95% CI] | lag-1 corr | max off-centre corr | spectrum min..max "
            "| KS p | skew | excess kurtosis | corr. with top |")
    out = [head, "|" + "---|" * 11]
    for r in rows:
        lo, hi = r["variance_ci"]
        out.append(
            f"| {r['kind']} | {r['factor']} | {r['resolution']} | {r['variance']:.4f} [{lo:.4f}, {hi:.4f}] "
            f"| {r['lag1_corr']:+.4f} | {r['max_offcentre_corr']:.4f} | {r['spectrum_min']:.3f}..{r['spectrum_max']:.3f} "
            f"| {r['ks_pvalue']:.3f} | {r['skewness']:+.4f} | {r['excess_kurtosis']:+.4f} | {r['shared_with_top']:.3f} |"
        )
    return "\n".join(out)
