"""Notebook 01, noise scaling (section 2.2, Fig. A.2, Table A.1): whether downsampled noise is still N(0, I)
noise, and the same layered model trained with each noise kind.

A valid noise for the lower resolutions of eq. (3) must have unit variance (else alpha, sigma no longer give
the intended log-SNR), be white (no spatial correlation: the model is trained on white noise) and be
Gaussian. The measurements below take a batch of noise fields ``(N, ..., H, W)`` whose first dimension
indexes independent draws; ``record_noise_findings`` and ``record_noise_training`` turn them, and the
trained models' evaluations, into recorded metrics, checked claims and a verdict.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
from scipy import stats

from ..evaluation import Evaluation
from ..noise import NOISE_KINDS, downsample_noise
from .recorder import ANALYTIC, Recorder
from .study import Study, compare, record_scores

#: Significance level of the normality tests.
ALPHA = 0.01


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


# ------------------------------------------------------------------------------------------- verdicts


def _white(row: dict) -> bool:
    # Five standard errors of a correlation estimated from n_pixels pixels.
    return abs(row["lag1_corr"]) < 5 / math.sqrt(row["n_pixels"])


def _unit_variance(row: dict) -> bool:
    lo, hi = row["variance_ci"]
    return lo <= 1.0 <= hi


def record_noise_findings(rec: Recorder, rows: Sequence[dict], eps0: torch.Tensor, generator=None) -> str:
    """Section 2.2: record the statistics of every (kind, factor) row of :func:`noise_report`, the paper's claims
    about sinc and bilinear noise checked against them, and the verdict as Markdown."""
    _record_rows(rec, rows)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    gaps = {}
    if {2, 4} <= {r["factor"] for r in rows}:
        for kind in kinds:
            if kind != "independent":
                gaps[kind] = cross_scale_gap(eps0, kind, generator)
                rec.metric(f"{kind}: RMS gap, x2 twice vs x4", gaps[kind], note="0 = consistent across scales")
    by_kind = {k: [r for r in rows if r["kind"] == k] for k in kinds}
    lines = []
    if "sinc" in by_kind:
        lines.append(_sinc_verdict(rec, by_kind, gaps))
    if "bilinear" in by_kind:
        lines.append(_bilinear_verdict(rec, by_kind, gaps))
    if "independent" in by_kind:
        lines.append(
            "* **Independent** noise is exactly N(0, I) at every resolution but shares nothing with the "
            "top-resolution noise, so the layers of eq. (3) see unrelated corruptions of the same image."
        )
    return "\n".join(lines)


def _record_rows(rec: Recorder, rows: Sequence[dict]) -> None:
    for row in rows:
        p = f"{row['kind']} x{row['factor']}"
        rec.metric(f"{p}: variance", row["variance"], ci=row["variance_ci"], note="1 for N(0, I)")
        rec.metric(f"{p}: lag-1 correlation", row["lag1_corr"], note="0 for white noise")
        rec.metric(f"{p}: KS p-value vs N(0,1)", row["ks_pvalue"], note=f"< {ALPHA} rejects N(0,1)")
        rec.metric(f"{p}: excess kurtosis", row["excess_kurtosis"], note="0 for a Gaussian")
        rec.metric(f"{p}: corr. with top-noise block mean", row["shared_with_top"], note="0 for independent noise")


def _sinc_verdict(rec: Recorder, by_kind: Mapping[str, list[dict]], gaps: Mapping[str, float]) -> str:
    sinc = by_kind["sinc"]
    # Bonferroni: one KS test per factor
    ok = all(_unit_variance(r) and _white(r) and r["ks_pvalue"] > ALPHA / len(sinc) for r in sinc)
    worst = max(abs(r["lag1_corr"]) for r in sinc)
    rec.claim(
        "sinc keeps N(0, I)",
        "sinc downsampling maintains the Gaussian nature of the noise (§2.2)",
        f"variance CI contains 1: {all(_unit_variance(r) for r in sinc)}; largest abs. lag-1 corr. {worst:.4f}; "
        f"min KS p {min(r['ks_pvalue'] for r in sinc):.3f}",
        ok, kind=ANALYTIC,  # eq. (1)'s normalisation makes it so; the draw checks the code
    )
    shared = min(r["shared_with_top"] for r in sinc)
    indep = [r["shared_with_top"] for r in by_kind.get("independent", [])]
    rec.claim(
        "sinc shares information across layers",
        "sinc noise allows effective sharing of pixel information across resolutions (§2.2)",
        f"corr. with the co-located top-noise block mean >= {shared:.3f} (independent noise: "
        f"{max(map(abs, indep)) if indep else float('nan'):.3f})",
        shared > 0.5, kind=ANALYTIC,  # each low-resolution pixel is a linear function of the top noise
    )
    return (
        f"* **Sinc (eq. 1)** gives unit-variance, white, Gaussian noise at every factor "
        f"({'confirmed' if ok else 'NOT confirmed'} here), and each low-resolution noise pixel is "
        f"strongly tied to the top-resolution noise it covers (correlation >= {shared:.2f})."
        + (f" Downsampling twice by 2 equals downsampling by 4 (RMS gap {gaps['sinc']:.1e})." if "sinc" in gaps else "")
    )


def _bilinear_verdict(rec: Recorder, by_kind: Mapping[str, list[dict]], gaps: Mapping[str, float]) -> str:
    bil = by_kind["bilinear"]
    gaussian = all(r["ks_pvalue"] > ALPHA / len(bil) for r in bil)
    lag = min(abs(r["lag1_corr"]) for r in bil)
    # The paper's reason and its conclusion are judged apart: the reason (nonlinearity) is false, the
    # conclusion (bilinear-downsampled noise is not the N(0, I) the schedule assumes) holds for the raw filter.
    rec.claim(
        "the reason: bilinear interpolation is nonlinear, so its noise is not Gaussian",
        "bilinear interpolation nonlinearly modifies the signal and does not keep the noise Gaussian (§2.2)",
        f"bilinear is linear, so the output is Gaussian (min KS p {min(r['ks_pvalue'] for r in bil):.3f}, "
        f"abs. excess kurtosis <= {max(abs(r['excess_kurtosis']) for r in bil):.3f}); it is correlated instead "
        f"(lag-1 corr >= {lag:.3f})",
        not gaussian, kind=ANALYTIC,
    )
    raw = by_kind.get("bilinear_raw", [])
    if raw:
        rec.claim(
            "the conclusion: bilinear-downsampled noise is not N(0, I)",
            "bilinear downsampling does not keep the noise N(0, I), so sinc is used instead (§2.2)",
            "the bilinear filter as described (no rescaling) leaves variance "
            + ", ".join(f"{r['variance']:.3f} (x{r['factor']}, KS p {r['ks_pvalue']:.1e})" for r in raw)
            + ": not unit variance, so not N(0, I); the cause is the filter's gain, not nonlinearity",
            not all(_unit_variance(r) for r in raw), kind=ANALYTIC,
        )
    raw_txt = (
        " Without rescaling its variance is only "
        + ", ".join(f"{r['variance']:.3f} (x{r['factor']})" for r in raw)
        + ", so the low-resolution inputs would be far less noisy than their schedule says."
        if raw
        else ""
    )
    return (
        f"* **Bilinear** downsampling is a linear map, so the noise stays Gaussian "
        f"({'KS does not reject N(0,1)' if gaussian else 'KS rejects N(0,1)'} after rescaling): the "
        f"paper's argument that bilinear breaks Gaussianity does not hold. What it does break is "
        f"whiteness: neighbouring pixels correlate (lag-1 >= {lag:.2f}), and its spectrum is not flat."
        + raw_txt
        + (f" It is also not consistent across scales (RMS gap {gaps['bilinear']:.2f})." if "bilinear" in gaps else "")
    )


def trained_arms(study: Study, levels: int, kinds: Sequence[str]) -> dict[str, list[Evaluation]]:
    """Table A.1's training half: the layered model over ``levels`` resolutions trained with each noise kind of
    ``kinds`` (``ldlib.noise``), once per training seed of ``study``, and scored with its protocol (one evaluation
    per seed, paired by seed index). The sinc arm is Table 1's layered model (the run cache shares it)."""
    runs = {kind: study.replicate(levels, noise=kind) for kind in kinds}  # every arm trained before any is sampled
    return {kind: study.evaluate(arm) for kind, arm in runs.items()}


def record_noise_training(rec: Recorder, evals: Mapping[str, Evaluation]) -> str:
    """Table A.1 / Fig. A.2: the same model trained with each noise kind; the paper chose sinc."""
    for kind, ev in evals.items():
        record_scores(rec, f"{kind} noise", ev)
    if "sinc" not in evals:
        return "sinc was not among the trained kinds, so the paper's choice is not compared."
    found = [compare(rec, f"sinc noise beats {kind} noise on {m.upper()}",
                     "sinc downsampling was chosen over alternatives (Table A.1, Fig. A.2; numbers not in our text)",
                     ("sinc", evals["sinc"]), (kind, ev), m, True)
             for kind, ev in evals.items() if kind != "sinc" for m in ("fid", "kid")]
    return "; ".join(found)
