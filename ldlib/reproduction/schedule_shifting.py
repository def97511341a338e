"""Notebook 02, schedule shifting (section 2.3, Figs. A.3-A.5): how much of an image's coarse structure
survives in each layer's noisy input at a shared t under each schedule, the noise-free part that the shared
sinc noise leaves in the lower layers' inputs, and the sweeps of the top layer's shift for the 2- and
3-resolution models (Fig. A.5), turned into recorded metrics, claims and verdicts.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..evaluation import Evaluation, across_seed_value
from ..evaluation.reliance import PROBE_TS
from ..forward import diffuse
from ..noise import noise_pyramid, sinc_downsample
from ..pyramid import downsample
from ..schedules import PAPER_SHIFTS, LayeredSchedule, cosine_t_at_logsnr, simple_diffusion_shift
from ..training import TrainResult
from . import paper_numbers
from .recorder import ANALYTIC, Recorder, seed_interval
from .study import Study, compare, record_scores


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


def record_schedule_findings(
    rec: Recorder,
    schedules: Mapping[str, LayeredSchedule],
    ts: Sequence[float],
    survival: Mapping[str, Mapping[int, np.ndarray]],
    gains: Mapping[int, float],
    threshold: float = 0.5,
) -> str:
    """Section 2.3: when each layer's coarse structure disappears under each schedule, and how the paper's
    shifts compare with simple diffusion's resolution rule."""
    paper, sd = schedules["paper"], schedules["simple diffusion"]
    base = paper.resolutions[0]
    t50 = {}
    for name, per_res in survival.items():
        for res, curve in per_res.items():
            t50[name, res] = first_t_below(ts, curve, threshold)
            rec.metric(f"{name}: t where structure corr. < {threshold} @ {res}px", t50[name, res])
    for res, s_paper, s_sd in zip(paper.resolutions[1:], paper.shifts[1:], sd.shifts[1:]):
        # the paper prints its shifts for 256 and 512 px over a 128 px base: compare by the ratio to the base
        printed = paper_numbers.SHIFTS[min(paper_numbers.SHIFTS) * (res // base)]
        rec.metric(f"paper shift @ {res}px", s_paper, paper=printed, source="§2.3", tolerance=1e-9, unit="nats",
                   note="the value our 'paper' schedule uses, against the printed one")
        rec.metric(f"paper - simple diffusion shift @ {res}px", s_paper - s_sd, unit="nats",
                   note="log(1/2) = -0.693 means SNR halved beyond resolution matching")
        for name, sch in schedules.items():
            shift = sch.shifts[sch.resolutions.index(res)]
            rec.metric(f"{name}: t at log-SNR 0 @ {res}px", cosine_t_at_logsnr(0.0, shift))
    for factor, gain in gains.items():
        rec.metric(f"noise variance left by D, x{factor}", gain, note=f"ideal low-pass: {1 / factor**2:.4f}")

    higher = paper.resolutions[1:]
    later = all(t50["paper", r] < t50["paper", base] for r in higher)
    rec.claim(
        "shifts delay higher layers",
        "shifted schedules make higher layers synthesise coarse features later (§2.3)",
        "t at which coarse structure drops below corr. 0.5: "
        + ", ".join(f"{r}px {t50['paper', r]:.3f}" for r in paper.resolutions),
        later, kind=ANALYTIC,  # a negative shift lowers the log-SNR at every t: delay by definition
    )
    sd_spread = max(abs(t50["simple diffusion", r] - t50["simple diffusion", base]) for r in higher)
    extra = [p - s for p, s in zip(paper.shifts[1:], sd.shifts[1:])]
    lines = [
        f"* Under the paper's shifts the coarse structure of every higher layer is destroyed earlier in the "
        f"forward process than the base layer's ({'confirmed' if later else 'NOT confirmed'}): "
        + ", ".join(f"{r}px at t={t50['paper', r]:.3f}" for r in paper.resolutions)
        + ". In sampling, those layers therefore commit to structure later than the base.",
        f"* Simple diffusion's rule (shift = 2 log(base/res)) lines the layers up instead: their structure "
        f"disappears at nearly the same t (largest gap {sd_spread:.3f}). The unshifted schedule lets the higher "
        f"layers keep structure longest: "
        + ", ".join(f"{r}px t={t50['unshifted', r]:.3f}" for r in paper.resolutions if ("unshifted", r) in t50)
        + ".",
        f"* The paper's shifts equal simple diffusion's plus {', '.join(f'{e:+.3f}' for e in extra)} nats, i.e. "
        f"an extra halving of the SNR at both 2x and 4x. So the paper's choice is *not* simple diffusion's "
        f"resolution rule (log(1/4) at 2x, log(1/16) at 4x) but that rule plus log(1/2); whether this extra "
        f"delay helps is what the sweep notebook tests.",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ shift sweep (Fig. A.5)


def shift_grid(ratio: int, extra: Sequence[float] = ()) -> list[float]:
    """Top-layer shifts to sweep for a layer ``ratio`` times the base: none, simple diffusion's
    2·log(1/ratio), the paper's choice, and the ``extra`` values (nats), sorted, duplicates removed."""
    values = [0.0, simple_diffusion_shift(ratio, 1), PAPER_SHIFTS[ratio], *extra]
    out: list[float] = []
    for v in sorted(values, reverse=True):
        if all(abs(v - o) > 1e-9 for o in out):
            out.append(float(v))
    return out


def shift_label(shift: float) -> str:
    """A shift in nats as the SNR factor it applies: log(1/8) -> 'log(1/8)', 0 -> 'none'."""
    if abs(shift) < 1e-12:
        return "none"
    factor = math.exp(-shift)
    return f"log(1/{factor:.3g})" if factor >= 1 else f"log({1 / factor:.3g})"


def sweep_top_shift(study: Study, levels: int, lower_shifts: Sequence[float], grid: Sequence[float],
                    progress: bool = True) -> list[tuple[float, list[TrainResult], list[Evaluation]]]:
    """Train and score the ``levels``-resolution model once per top-layer shift in ``grid`` and training seed of
    ``study``, the lower layers fixed at ``lower_shifts``. Returns (shift, runs, evaluations) in grid order, one
    run and evaluation per seed (the grid's paper and unshifted points are Table 1's runs, shared)."""
    out = []
    for s in grid:
        shifts = (*lower_shifts, s)
        runs = study.replicate(levels, shifts=shifts, progress=progress,
                               label=f"shift{levels}-{shift_label(s).replace('log(1/', 'snr1over').rstrip(')')}")
        out.append((s, runs, study.evaluate(runs)))
    return out


def sweeps(study: Study, extra2: Sequence[float] = (), extra3: Sequence[float] = (),
           pick: Callable[[list], float] | None = None) -> tuple[list, list]:
    """Fig. A.5's two sweeps (:func:`sweep_top_shift`): the 2-resolution model's top shift over
    :func:`shift_grid` (2x, plus ``extra2``), then the 3-resolution model's over the 4x grid (plus ``extra3``) with
    its middle layer at the shift ``pick`` chooses from the first sweep (default :func:`best_shift`)."""
    sweep2 = sweep_top_shift(study, 2, [0.0], shift_grid(2, extra2))
    sweep3 = sweep_top_shift(study, 3, [0.0, (pick or best_shift)(sweep2)], shift_grid(4, extra3))
    return sweep2, sweep3


def best_shift(results: list[tuple[float, list[TrainResult], list[Evaluation]]]) -> float:
    """The shift with the lowest FID averaged over the training seeds."""
    return min(results, key=lambda r: across_seed_value(r[2], "fid")[0])[0]


def sweep_points(results) -> list[tuple[float, float, tuple[float, float]]]:
    """(shift, mean FID over seeds, its 95% interval across seeds) per grid point: Fig. A.5's data."""
    return [(s, *across_seed_value(evs, "fid")) for s, _, evs in results]


def _sweep_claim(rec: Recorder, levels: int, results, ratio: int) -> str:
    best, paper = best_shift(results), PAPER_SHIFTS[ratio]
    for s, _, evs in results:
        note = ("paper's choice" if abs(s - paper) < 1e-9 else
                "simple diffusion's rule" if abs(s - simple_diffusion_shift(ratio, 1)) < 1e-9 else "")
        record_scores(rec, f"{levels}-resolution model, top shift {shift_label(s)}", evs, note=note)
    ours = next(evs for s, _, evs in results if abs(s - paper) < 1e-9)
    found = [compare(rec, f"the paper's top shift {shift_label(paper)} beats {shift_label(s)} "
                          f"({levels} resolutions)",
                     f"the sweep picked {shift_label(paper)} for a layer {ratio}x the base (§2.3, Fig. A.5)",
                     (shift_label(paper), ours), (shift_label(s), evs), "fid", True)
             for s, _, evs in results if abs(s - paper) > 1e-9]
    return f"{levels} resolutions: lowest mean FID at {shift_label(best)}; " + "; ".join(found)


def record_sweeps(rec: Recorder, sweep2, sweep3) -> str:
    """Fig. A.5: the 2-resolution sweep, then the 3-resolution sweep at the best 2-resolution value."""
    lines = [_sweep_claim(rec, 2, sweep2, 2), _sweep_claim(rec, 3, sweep3, 4)]
    return "; ".join(lines)


# ------------------------------------------------------------------------------ the noise-free part


def noise_free_part(x0: torch.Tensor, eps0: torch.Tensor, t: float, schedule: LayeredSchedule) -> list[torch.Tensor]:
    """c_i = z_i - (sigma_i / sigma_top) S(z_top, i) for every lower layer i of eq. (3) with sinc noise.

    S(eps0, i) is a fixed linear map of the top noise (eq. 1), so S(z_top, i) = alpha_top S(x0, i) + sigma_top
    S(eps0, i) carries the very noise z_i carries, scaled: c_i = alpha_i D(x0, i) - (sigma_i alpha_top /
    sigma_top) S(x0, i) has no noise at all, whatever eps0 and t. A network that sees every layer can compute it
    (S is a convolution), so it reads a noise-free multiple of the low-resolution image at any t < 1. S keeps
    unit variance, a gain of T = res_top / res_i on a flat image, so there c_i = (alpha_i - T sigma_i alpha_top /
    sigma_top) D(x0, i), zero exactly at SNR_i = T^2 SNR_top (simple diffusion's shift); on real images what
    remains there is the difference between the bilinear pyramid D and the sinc filter on the image's detail.
    Sampling cannot supply the clean image here: the sampler builds every z_i from its own state
    (``ldlib.sampler``: z_i = alpha_i D(x_hat, i) + sigma_i S(eps_hat, i)), so there c_i is the expression above
    with its own estimate x_hat (0 at t = 1) in place of x0, and a model that learned to read c_i reads back its
    own earlier guess."""
    z, _, _ = diffuse(x0, eps0, t, schedule, "sinc")
    low = noise_pyramid(z[-1], schedule.resolutions, "sinc")
    sigmas = [sigma for _, sigma in schedule.alpha_sigma(torch.tensor(float(t)))]
    return [z[i] - (sigmas[i] / sigmas[-1]) * low[i] for i in range(len(z) - 1)]


def noise_free_ratio(x0: torch.Tensor, schedule: LayeredSchedule, ts: Sequence[float],
                     generator: torch.Generator | None = None) -> dict[int, np.ndarray]:
    """Per lower resolution, the noise-free part's size relative to the clean layer, ||c_i|| / ||D(x0, i)||
    (:func:`noise_free_part`; the norms over all of ``x0``), at each t in ``ts`` (0 < t < 1)."""
    eps0 = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    targets = [downsample(x0, r) for r in schedule.resolutions[:-1]]
    out = {r: np.zeros(len(ts)) for r in schedule.resolutions[:-1]}
    for k, t in enumerate(ts):
        for r, c, d in zip(out, noise_free_part(x0, eps0, t, schedule), targets):
            out[r][k] = float(c.norm() / d.norm())
    return out


def record_noise_free(rec: Recorder, ts: Sequence[float], ratios: Mapping[str, Mapping[int, np.ndarray]]) -> str:
    """The noise-free part of each lower layer's input (:func:`noise_free_ratio`) per schedule at the t of
    ``ts`` nearest 0.5, recorded, and which schedule leaves the least of it."""
    k = int(np.argmin(np.abs(np.asarray(ts) - 0.5)))
    for name, per_res in ratios.items():
        for res, r in per_res.items():
            rec.metric(f"noise-free part of the {res}px input at t = {ts[k]:.2f}, {name} schedule", r[k],
                       note="||z_i - (sigma_i / sigma_top) S(z_top, i)|| / ||D(x0, i)||; exact (no noise in it)")
    least = min(ratios, key=lambda n: max(r[k] for r in ratios[n].values()))
    sizes = "; ".join(f"{n} " + ", ".join(f"{res}px {r[k]:.3f}" for res, r in per_res.items())
                      for n, per_res in ratios.items())
    return (f"With sinc noise a lower layer's noise is a fixed linear map of the top layer's, so z_i - (sigma_i / "
            f"sigma_top) S(z_top, i) holds the image with no noise at all. Its size relative to the clean layer at "
            f"t = {ts[k]:.2f}: {sizes}; the least under the {least} schedule.")


def reliance_ratios(reliance: Sequence[np.ndarray]) -> list[float]:
    """Per training seed, the top layer's MSE with independent lower noise over its MSE as trained (both summed
    over the probed t): how much the model leans on the noise-free part (``ldlib.evaluation.reliance.noise_reliance``)."""
    return [float(r[:, 1].sum() / r[:, 0].sum()) for r in reliance]


def record_reliance(rec: Recorder, reliance: Mapping[float, Sequence[np.ndarray]], levels: int) -> str:
    """Per top-layer shift of a sweep, :func:`reliance_ratios` across its training seeds: mean, 95% t-interval
    and range, recorded; the text names each."""
    found = []
    for shift, runs in reliance.items():
        ratios = reliance_ratios(runs)
        mean, ci = seed_interval(ratios)
        rng = f"; seeds {min(ratios):.3g}-{max(ratios):.3g}" if len(ratios) > 1 else ""
        rec.metric(f"top-layer error, lower noise independent / as trained, {levels}-resolution model, top shift "
                   f"{shift_label(shift)}", mean, ci=ci, note=f"MSE summed over t in {list(PROBE_TS)}; "
                   f"{len(ratios)} training seed{'s' if len(ratios) > 1 else ''}{rng}")
        found.append(f"{shift_label(shift)} {mean:.2f}x")
    return (f"{levels}-resolution models: the top layer's x-prediction error grows " + ", ".join(found)
            + " when the lower layers' noise is drawn independently of the top layer's (same images, t and schedule)")
