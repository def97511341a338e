"""Figures of the notebooks (Figs. A.1-A.6 of the paper and our additions). Each function computes nothing the
library does not already expose; it only draws and returns a matplotlib figure."""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import torch
from scipy import stats

from ..crop import nested_crop_boxes
from ..data.images import to_display, to_float
from ..noise import axis_weights, downsample_noise
from ..pyramid import downsample
from ..schedules import LayeredSchedule
from .noise_scaling import autocorrelation, radial_power_spectrum

KIND_COLOURS = {"sinc": "C0", "bilinear": "C1", "bilinear_raw": "C3", "independent": "C2"}


def noise_samples(eps0: torch.Tensor, factors: Sequence[int], kinds: Sequence[str], generator=None):
    """One top-resolution noise field and its downsampled versions, a row per noise kind."""
    field = eps0[:1]
    cols = [1, *factors]
    fig, axes = plt.subplots(len(kinds), len(cols), figsize=(2.4 * len(cols), 2.4 * len(kinds)), squeeze=False)
    for r, kind in enumerate(kinds):
        for c, f in enumerate(cols):
            img = field if f == 1 else downsample_noise(field, f, kind, generator)
            ax = axes[r, c]
            ax.imshow(img[0, 0].numpy(), cmap="gray", vmin=-3, vmax=3, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{kind}, {img.shape[-1]}px" if f > 1 else f"eps0, {img.shape[-1]}px", fontsize=9)
    fig.suptitle("The same top-resolution noise, downsampled three ways (grey scale -3..3)")
    fig.tight_layout()
    return fig


def power_spectra(eps0: torch.Tensor, factors: Sequence[int], kinds: Sequence[str], generator=None):
    """Radially averaged power spectra: white unit-variance noise is flat at 1."""
    fig, axes = plt.subplots(1, len(factors), figsize=(4.2 * len(factors), 3.3), squeeze=False)
    for ax, f in zip(axes[0], factors):
        for kind in kinds:
            freq, power = radial_power_spectrum(downsample_noise(eps0, f, kind, generator))
            ax.plot(freq, power, label=kind, color=KIND_COLOURS.get(kind))
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xlabel("spatial frequency (cycles / pixel)")
        ax.set_ylabel("power (white N(0,1) = 1)")
        ax.set_title(f"downsampled by {f}")
        ax.set_ylim(0, None)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def autocorrelations(eps0: torch.Tensor, factor: int, kinds: Sequence[str], generator=None, max_lag: int = 3):
    """Spatial autocorrelation maps (lag 0 in the centre): white noise is a single bright pixel."""
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.0 * len(kinds), 3.0), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        ac = autocorrelation(downsample_noise(eps0, factor, kind, generator), max_lag).numpy()
        im = ax.imshow(ac, cmap="RdBu_r", vmin=-1, vmax=1, extent=[-max_lag - 0.5, max_lag + 0.5] * 2)
        ax.set_title(f"{kind} (x{factor})\nlag-1 corr {0.5 * (ac[max_lag, max_lag + 1] + ac[max_lag + 1, max_lag]):+.3f}", fontsize=9)
        ax.set_xlabel("lag x"), ax.set_ylabel("lag y")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8)
    return fig


def qq_plots(eps0: torch.Tensor, factor: int, kinds: Sequence[str], generator=None, n: int = 4000):
    """Normal quantile-quantile plots against N(0, 1): points on the diagonal mean Gaussian with unit variance."""
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.0 * len(kinds), 3.0), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        x = downsample_noise(eps0, factor, kind, generator).reshape(-1)
        sample = x[torch.randperm(x.numel(), generator=generator)[:n]].double().numpy()
        (osm, osr), _ = stats.probplot(sample, dist="norm")
        ax.plot(osm, osr, ".", ms=2, color=KIND_COLOURS.get(kind))
        ax.plot([-4, 4], [-4, 4], "k--", lw=0.8)
        ax.set_title(f"{kind} (x{factor})", fontsize=9)
        ax.set_xlabel("N(0,1) quantile"), ax.set_ylabel("sample quantile")
    fig.tight_layout()
    return fig


def filter_kernels(n: int, factor: int):
    """What one low-resolution pixel is made of: the 1-D weights of sinc (eq. 1) and bilinear downsampling
    over the top-resolution pixels, centred on the middle output pixel."""
    sinc_rows = axis_weights("sinc", n, factor)
    bil_rows = axis_weights("bilinear", n, factor)
    mid = n // factor // 2
    pos = np.arange(n) - (mid * factor + (factor - 1) / 2)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.plot(pos, sinc_rows[mid], ".-", label="sinc (eq. 1, unit-variance scaled)", color=KIND_COLOURS["sinc"])
    ax.plot(pos, bil_rows[mid], ".-", label="bilinear, anti-aliased (unit-variance scaled)", color=KIND_COLOURS["bilinear"])
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlim(-6 * factor, 6 * factor)
    ax.set_xlabel("top-resolution pixel offset from the output pixel's centre")
    ax.set_ylabel("weight")
    ax.set_title(f"1-D weights of one output pixel, downsampling by {factor}")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)  # inside, it covers the peak
    fig.tight_layout()
    return fig


def logsnr_curves(schedules: Mapping[str, LayeredSchedule], t: torch.Tensor | None = None):
    """log-SNR(t) of every resolution under each schedule (Figs. A.3-A.4), plus the same curves moved to the
    base resolution: a layer ``T`` times finer sees ``2 log T`` more log-SNR once its noise is averaged
    down to the base grid (white noise variance falls by T^2), so equal base-equivalent curves mean
    equal difficulty for coarse structure (simple diffusion's argument)."""
    t = torch.linspace(0, 1, 401) if t is None else t
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    styles = ["-", "--", ":", "-."]
    for (name, sch), ls in zip(schedules.items(), styles):
        base = sch.resolutions[0]
        for i, (res, l) in enumerate(zip(sch.resolutions, sch.logsnr(t))):
            colour = f"C{i}"
            axes[0].plot(t, l, ls, color=colour, label=f"{name}: {res}px")
            axes[1].plot(t, l + 2 * np.log(res / base), ls, color=colour, label=f"{name}: {res}px")
    axes[0].set_title("log-SNR per resolution (shared t)")
    axes[1].set_title("base-equivalent log-SNR (+ 2 log(res / base))")
    for ax in axes:
        ax.set_xlabel("t (0 = data, 1 = noise)"), ax.set_ylabel("log-SNR")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylim(-12, 12)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def noised_grid(z_by_t: Mapping[float, Sequence[torch.Tensor]], resolutions: Sequence[int], schedule: LayeredSchedule, index: int = 0):
    """z_{t,i} of eq. (3) for one image: a row per resolution, a column per t."""
    ts = list(z_by_t)
    fig, axes = plt.subplots(len(resolutions), len(ts), figsize=(2.1 * len(ts), 2.2 * len(resolutions)), squeeze=False)
    for c, t in enumerate(ts):
        for r, (res, l) in enumerate(zip(resolutions, schedule.logsnr(torch.tensor(float(t))))):
            ax = axes[r, c]
            ax.imshow(to_display(z_by_t[t][r][index]), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"t={t:g}, {res}px\nlogSNR {l.item():+.1f}", fontsize=8)
    fig.tight_layout()
    return fig


def _per_schedule_figure(t, curves: Mapping[str, Mapping[int, np.ndarray]], ylabel: str, title: str):
    """A figure of one line per schedule (line style) and resolution (colour) against t; returns (fig, ax)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for (name, per_res), ls in zip(curves.items(), ["-", "--", ":", "-."]):
        for i, (res, c) in enumerate(per_res.items()):
            ax.plot(t, c, ls, color=f"C{i}", label=f"{name}: {res}px")
    ax.set_xlabel("t (0 = data, 1 = noise)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    return fig, ax


def survival_curves(t: np.ndarray, curves: Mapping[str, Mapping[int, np.ndarray]], threshold: float = 0.5):
    """How much coarse structure survives the noise (curves of ``schedule_shifting.structure_survival``)."""
    fig, ax = _per_schedule_figure(t, curves, "corr(low-pass(z_i), D(x0, base))",
                                   "Coarse structure left in each layer's noisy input")
    ax.axhline(threshold, color="k", lw=0.6)
    fig.tight_layout()
    return fig


def noise_free_curves(t: np.ndarray, ratios: Mapping[str, Mapping[int, np.ndarray]]):
    """The noise-free part of each lower layer's input against t (``schedule_shifting.noise_free_ratio``)."""
    fig, _ = _per_schedule_figure(t, ratios, "||z_i - (σ_i/σ_top) S(z_top, i)|| / ||D(x0, i)||",
                                  "The noise-free part of each lower layer's input (sinc noise)")
    fig.tight_layout()
    return fig


def noise_reliance_curves(t: Sequence[float], reliance: Mapping[str, Sequence[np.ndarray]]):
    """The top layer's x-prediction MSE against t as trained (solid) and with the lower layers' noise drawn
    independently (dashed), mean over training seeds, one colour per model
    (``ldlib.evaluation.reliance.noise_reliance``)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i, (name, runs) in enumerate(reliance.items()):
        mean = np.mean(np.stack(runs), axis=0)
        ax.plot(t, mean[:, 0], "-o", ms=3, color=f"C{i}", label=f"{name}: as trained")
        ax.plot(t, mean[:, 1], "--s", ms=3, color=f"C{i}", label=f"{name}: lower noise independent")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("top layer x-prediction MSE")
    ax.set_title("Does the model read the lower layers' noise back out of the top layer's?")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def reliance_by_rule(t: Sequence[float], reliance: Mapping[str, Mapping[str, object]]):
    """Table 1's noise-free-part probe (``table1.noise_reliance``), one panel per schedule rule: per layered row
    (one colour) the top level's x-prediction MSE as trained (solid) and with the lower levels' noise drawn
    independently (dashed), mean over training seeds; the legend gives its top-level training loss over the single
    row's (``table1.top_level_loss``)."""
    fig, axes = plt.subplots(1, len(reliance), figsize=(4.2 * len(reliance), 3.6), sharey=True, squeeze=False)
    for ax, (rule, rows) in zip(axes[0], reliance.items()):
        for i, (name, r) in enumerate(rows.items()):
            layered = np.mean(np.stack(r.layered), axis=0)
            ratio = f"training loss {np.mean(r.loss_ratio):.2f}x {r.single_name}'s"
            ax.plot(t, layered[:, 0], "-o", ms=3, color=f"C{i}", label=f"{name}: as trained ({ratio})")
            ax.plot(t, layered[:, 1], "--s", ms=3, color=f"C{i}", label=f"{name}: lower noise independent")
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_title(f"schedule rule: {rule}", fontsize=10)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("top level x-prediction MSE")
    n = len(next(iter(next(iter(reliance.values())).values())).layered)
    fig.suptitle(f"Do the layered rows read the lower levels' noise back out of the top level's? (mean of {n} "
                 f"seed{'s' if n > 1 else ''})", fontsize=10)
    fig.tight_layout()
    return fig


def loss_curves(level_losses: Sequence[Sequence[float]], resolutions: Sequence[int], smooth: int = 20):
    """Per-resolution training loss terms before their resolution weights w_i (moving average over ``smooth``
    steps): the x-prediction MSE, times w_t when the run used ``time_weighting="min_snr"``."""
    arr = np.asarray(level_losses, dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    k = max(1, min(smooth, len(arr) // 5 or 1))
    kernel = np.ones(k) / k
    for i, res in enumerate(resolutions):
        ax.plot(np.arange(k, len(arr) + 1), np.convolve(arr[:, i], kernel, mode="valid"), label=f"{res}px", color=f"C{i}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("x-prediction MSE")
    ax.set_title("Training loss per resolution (eq. 3 terms before w_i)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def model_grid(samples: Mapping[str, torch.Tensor], prompts: Sequence[str], n: int = 6):
    """Fig. A.1's layout: a row per model, a column per prompt (the same prompt and seed in every row)."""
    n = min(n, len(prompts), *(len(s) for s in samples.values()))
    fig, axes = plt.subplots(len(samples), n, figsize=(1.9 * n, 2.0 * len(samples) + 0.6), squeeze=False)
    for r, (name, images) in enumerate(samples.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(to_display(images[c]), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(textwrap.fill(prompts[c], 24, max_lines=3, placeholder="..."), fontsize=7)
        # wrapped at word boundaries so that long model names stay within their own row
        axes[r, 0].set_ylabel(textwrap.fill(f"{name} ({images.shape[-1]} px)", 20), fontsize=9)
    fig.tight_layout()
    return fig


def corruption_curves(levels: Mapping[str, Sequence[float]], fids: Mapping[str, Sequence[float]], floor: float):
    """FID against corruption strength, one panel per corruption kind, with the split-half floor marked."""
    fig, axes = plt.subplots(1, len(levels), figsize=(4 * len(levels), 3), squeeze=False)
    for ax, kind in zip(axes[0], levels):
        ax.plot(levels[kind], fids[kind], "o-")
        ax.axhline(floor, color="grey", ls="--", label="two real halves")
        ax.set_xlabel({"noise": "noise std (image in [-1, 1])", "blur": "down-up resampling factor"}.get(kind, kind))
        ax.set_ylabel("FID")
        ax.set_title(f"FID vs {kind}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def shift_sweep(sweeps: Mapping[str, Sequence[tuple[float, float, tuple[float, float]]]],
                marks: Mapping[str, Mapping[str, float]]):
    """Fig. A.5: FID (mean over training seeds, 95% interval across them) against the top layer's shift, one
    panel per sweep; ``marks`` draws vertical lines (e.g. the paper's choice, simple diffusion's rule) per panel."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(4.5 * len(sweeps), 3.2), squeeze=False)
    for ax, (title, points) in zip(axes[0], sweeps.items()):
        s = np.array([p[0] for p in points])
        fid = np.array([p[1] for p in points])
        err = np.array([[p[1] - p[2][0], p[2][1] - p[1]] for p in points]).T
        ax.errorbar(s, fid, yerr=err, fmt="o-", capsize=3)
        for (label, x), style in zip(marks.get(title, {}).items(), ("--", ":", "-.")):
            ax.axvline(x, color="grey", ls=style, label=label)
        ax.set_xlabel("top-layer shift (nats of log-SNR)")
        ax.set_ylabel("FID")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def crop_pyramid(images: torch.Tensor, resolutions: Sequence[int], crop_size: int, generator=None):
    """Fig. A.6: each image's pyramid with the nested strategic crops drawn on it (base whole)."""
    from matplotlib.patches import Rectangle

    n, k = len(images), len(resolutions)
    fig, axes = plt.subplots(n, k, figsize=(2.4 * k, 2.4 * n), squeeze=False)
    for r in range(n):
        boxes = nested_crop_boxes(resolutions, crop_size, generator)
        x = to_float(images[r : r + 1])
        for c, res in enumerate(resolutions):
            ax = axes[r, c]
            ax.imshow(to_display(downsample(x, res)[0]), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if boxes[c] is not None:
                b = boxes[c]
                ax.add_patch(Rectangle((b.left - 0.5, b.top - 0.5), b.size, b.size, fill=False, color="red", lw=1.5))
            if c + 1 < k and boxes[c + 1] is not None:  # where the next level's crop comes from
                nb = boxes[c + 1]
                f = res / nb.resolution
                ax.add_patch(Rectangle((nb.left * f - 0.5, nb.top * f - 0.5), nb.size * f, nb.size * f, fill=False,
                                       color="yellow", lw=1, ls="--"))
            if r == 0:
                ax.set_title(f"{res}px" + (f", crop {boxes[c].size}" if boxes[c] else ", whole"), fontsize=9)
    fig.tight_layout()
    return fig


def _target(name: str) -> str:
    """The target resolution in a Table 1 row's name ("layered64" -> "64")."""
    return name.lstrip("abcdefghijklmnopqrstuvwxyz")


def budget_curves(points: Mapping[str, Mapping[float, Sequence[float]]],
                  differences: Mapping[str, Mapping[float, tuple[float, tuple[float, float]]]], metric: str = "FID",
                  xlabel: str = "images seen", title: str = "layered - single", note: str = "",
                  floors: Mapping[int, float] | None = None,
                  seed_differences: Mapping[str, Mapping[float, Sequence[float]]] | None = None):
    """Left: each model's ``metric`` against its budget (images seen, or training seconds for a time-to-quality
    curve), one marker per training seed (filled circles layered, open squares single) and a line through
    the seeds' means; ``note`` (e.g. the sample count behind every point) goes under its title; ``floors`` maps a
    target resolution to the metric of real images at the points' sample count, drawn as a dotted line in that
    resolution's colour (how far the models are from what real images score). Right: each
    pair's paired difference per budget with its 95% interval (below 0: the first model is better), so a reader
    sees whether the ordering holds as training grows, and ``seed_differences`` (the same keys: one difference
    per training seed) as small open markers beside each interval: the spread between seeds it is built from."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    # one colour per target resolution (its single and layered model side by side), solid lines for layered
    colours = {res: f"C{i}" for i, res in enumerate(dict.fromkeys(_target(name) for name in points))}
    _budget_levels(ax, points, colours, floors)
    _budget_axes((ax, bx), points)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {xlabel} (small markers: seeds)" + (f"\n{note}" if note else ""))
    ax.legend(fontsize=8)
    _budget_differences(bx, differences, colours, seed_differences or {})
    bx.set_xlabel(xlabel)
    bx.set_ylabel(f"{metric} difference")
    seeds_note = ", diamonds: single seeds" if seed_differences else ""
    bx.set_title(f"{title}, paired, 95% interval{seeds_note}\n(< 0: {title.split(' - ')[0]} better)")
    if differences:
        bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _budget_levels(ax, points: Mapping[str, Mapping[float, Sequence[float]]], colours: Mapping[str, str],
                   floors: Mapping[int, float] | None) -> None:
    """:func:`budget_curves`' left panel: the seeds' markers, a line through their means, the floors."""
    for name, curve in points.items():
        budgets = sorted(curve)
        layered = name.startswith("layered")
        # markers tell single from layered even where a curve has one budget and so no line
        color, style, marker = colours[_target(name)], "-" if layered else "--", "o" if layered else "s"
        ax.plot(budgets, [np.mean(curve[b]) for b in budgets], style, color=color, label=name, marker=marker, ms=4,
                mfc=color if layered else "none")
        for b in budgets:
            ax.scatter([b] * len(curve[b]), curve[b], s=12, alpha=0.6, marker=marker,
                       facecolors=color if layered else "none", edgecolors=color)
    for res, value in (floors or {}).items():
        ax.axhline(value, ls=":", lw=1.2, color=colours.get(str(res), "grey"), label=f"real images @ {res}px")


def _budget_axes(axes, points: Mapping[str, Mapping[float, Sequence[float]]]) -> None:
    """Both panels' log budget axis, ticked at the first curve's budgets."""
    xs = [b for curve in points.values() for b in curve]
    lo, hi = min(xs), max(xs)
    # at least a 4x span: with one budget per arm (e.g. equal wall time, 228 vs 232 s) an auto-scaled log axis
    # would stretch a 2% gap across the whole panel
    span = max(4.0, hi / lo * 1.6)
    centre = (lo * hi) ** 0.5
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xlim(centre / span**0.5, centre * span**0.5)
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 100
                                                                       else f"{v:.3g}"))
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xticks(sorted(next(iter(points.values()))))


def _budget_differences(bx, differences: Mapping[str, Mapping[float, tuple[float, tuple[float, float]]]],
                        colours: Mapping[str, str], seed_differences: Mapping[str, Mapping[float, Sequence[float]]]):
    """:func:`budget_curves`' right panel: each pair's paired difference and interval, its seeds beside it."""
    for i, (name, curve) in enumerate(differences.items()):
        budgets = sorted(curve)
        means = np.array([curve[b][0] for b in budgets])
        lo = means - np.array([curve[b][1][0] for b in budgets])
        hi = np.array([curve[b][1][1] for b in budgets]) - means
        shift = 1 + 0.03 * (i - (len(differences) - 1) / 2)  # side by side on the log axis
        color = colours.get(_target(name.split(" - ")[0]), f"C{i}")
        bx.errorbar(np.array(budgets) * shift, means, yerr=[lo, hi], marker="o", capsize=3, label=name, color=color)
        seeds = seed_differences.get(name, {})
        for b in budgets:  # a little right of the interval, so neither hides the other
            if seeds.get(b):
                bx.scatter([b * shift * 1.04] * len(seeds[b]), seeds[b], s=14, marker="D", facecolors="none",
                           edgecolors=color, alpha=0.8, linewidths=0.9)
    bx.axhline(0, color="grey", lw=0.8)


#: one colour per verdict (``recorder.VERDICTS``), the report's row colours made darker
VERDICT_COLOURS = {"agrees": "#2e7d32", "disagrees": "#c62828", "no effect": "#3f6fb5", "unresolved": "#c79100"}


def claims_forest(claims: Sequence[tuple[str, str, str, tuple[float, float, float]]], wrap: int = 90):
    """Every empirical claim at a glance: one row per ``(group, label, verdict, (x, low, high))``, its paired
    difference and 95% interval in the paper's units (``recorder.in_paper_units``: > 0 the paper's direction,
    1 an effect as large as the paper's), coloured by verdict, a thin line between groups (notebooks). The
    shaded band is +-1, where an interval means no effect of the paper's size; the axis is linear inside +-2
    and logarithmic beyond, so one wide interval does not squash the rest."""
    labels = [textwrap.fill(f"{group} · {label}", wrap) for group, label, _, _ in claims]
    heights = [0.3 + 0.13 * label.count("\n") for label in labels]  # inches per row
    ys = np.cumsum(heights) - np.array(heights) / 2
    fig, ax = plt.subplots(figsize=(11, 1.4 + sum(heights)))
    ax.axvspan(-1, 1, color="#e6ecf6", zorder=0, label="no effect of the paper's size (±1)")
    ax.axvline(0, color="grey", lw=0.8)
    ax.axvline(1, color="grey", lw=0.8, ls="--", label="the paper's effect size")
    seen = set()
    for i, (y, (group, _, verdict, (x, lo, hi))) in enumerate(zip(ys, claims)):
        ax.errorbar([x], [y], xerr=[[x - lo], [hi - x]], fmt="o", ms=5, capsize=3, color=VERDICT_COLOURS[verdict],
                    label=None if verdict in seen else verdict)
        seen.add(verdict)
        if i and claims[i - 1][0] != group:
            ax.axhline(y - heights[i] / 2, color="grey", lw=0.5)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_ylim(sum(heights), 0)  # the first claim on top
    ax.set_xscale("symlog", linthresh=2, linscale=2)
    reach = 1.2 * max([2.0] + [abs(v) for *_, units in claims for v in units])
    ax.set_xlim(-reach, reach)
    ticks = [t for t in (-1000, -100, -10, -2, -1, 0, 1, 2, 10, 100, 1000) if abs(t) <= reach]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("paired difference / the paper's effect size (> 0: the paper's direction; 95% interval)")
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    ax.set_title(f"The paper's empirical claims, checked ({len(claims)}; colour: verdict)", pad=38)
    fig.tight_layout()
    return fig
