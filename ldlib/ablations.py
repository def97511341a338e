"""The appendix's ablations as library calls: noise kinds (Table A.1), schedule-shift sweeps (Fig. A.5),
strategic cropping (section 3.1, Fig. A.6) and model stacking (section 3.2, Table A.2).

Every experiment trains through :func:`train_layered`, so two notebooks that ask for the same model (the
sinc-noise model of notebook 01 is Table 1's layered model) get the same cached run, and every comparison
is scored by one :class:`ldlib.evaluation.Evaluator` and decided by confidence intervals: a claim agrees or
disagrees only when the two intervals do not overlap, and is *unresolved* otherwise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from .config import DiffusionConfig, get_preset, model_config
from .crop import nested_crop_boxes
from .device import memory_format, place
from .evaluation import Evaluation, Evaluator, _metric, better, data_spec
from .network import build_model
from .results import Recorder, fmt, fmt_ci, ordered
from .runs import budget_config, trained_model
from .schedules import PAPER_SHIFTS, simple_diffusion_shift
from .text import HashTextEncoder
from .train import TrainResult, step_loss


@dataclass(frozen=True)
class Budget:
    """What every compared model gets: images seen, batch size (images per step), AdamW learning rate."""

    images: int
    batch_size: int
    lr: float
    seed: int = 0
    text_encoder: str = "minilm"

    def config(self, **overrides):
        return budget_config(self.images, self.batch_size, self.lr, self.seed, self.text_encoder, **overrides)


@dataclass
class Study:
    """What a training notebook's parameters (``ldlib.experiments.TRAINING``) define: the data, the equal
    budget, and the one evaluation protocol its models are compared with."""

    preset: str
    spec: dict
    budget: Budget
    evaluator: Evaluator

    @classmethod
    def from_params(cls, p: Mapping, progress: bool = True) -> "Study":
        spec = data_spec(p["dataset"], seed=p["seed"], data_size=p["data_size"], root=p["data_root"])
        evaluator = Evaluator(spec, p["n_samples"], p["sample_steps"], p["guidance"], seed=p["seed"],
                              text_encoder=p["text_encoder"], n_reference=p["n_reference"],
                              judge_steps=p["judge_steps"], n_boot=p["n_boot"], progress=progress)
        return cls(p["preset"], spec, Budget(p["budget_images"], p["batch_size"], p["lr"], p["seed"],
                                             p["text_encoder"]), evaluator)

    def train(self, levels: int, **kwargs) -> TrainResult:
        return train_layered(self.preset, levels, self.spec, kwargs.pop("budget", self.budget), **kwargs)

    def prompts(self, resolution: int) -> list[str]:
        """The prompts every evaluation uses, in order (the reference captions)."""
        return self.evaluator.reference(resolution).captions


def train_layered(preset: str, levels: int, data: dict, budget: Budget, *, noise: str = "sinc",
                  shifts: Sequence[float] | None = None, crop_size: int | None = None,
                  init_from: TrainResult | None = None, label: str = "", progress: bool = True) -> TrainResult:
    """The layered model of ``preset`` over its first ``levels`` resolutions, trained on eq. (3) with the given
    noise kind, per-resolution shifts (nats; default the paper's), optional strategic cropping, optionally
    stacked on a smaller finished run. Defaults equal Table 1's layered rows, so those runs are shared."""
    mcfg = model_config(preset, levels)
    dcfg = (DiffusionConfig.paper(mcfg.resolutions, noise_kind=noise) if shifts is None
            else DiffusionConfig(mcfg.resolutions, tuple(float(s) for s in shifts), noise_kind=noise))
    tcfg = budget.config(crop_size=crop_size) if crop_size else budget.config()
    name = f"{preset}-layered{mcfg.resolutions[-1]}" + (f"-{label}" if label else "")
    return trained_model(name, mcfg, dcfg, tcfg, data, progress=progress, init_from=init_from)


# ------------------------------------------------------------------------------------------ reporting


def record_scores(rec: Recorder, name: str, ev: Evaluation, note: str = "") -> None:
    """FID, KID, IS-style and alignment of one model, each with its 95% interval."""
    s = ev.scores
    rec.metric(f"FID {name}", s.fid, ci=s.fid_ci, note=note)
    rec.metric(f"KID {name}", s.kid, ci=s.kid_ci)
    rec.metric(f"IS (EfficientNet-Lite0) {name}", s.inception_score, ci=s.is_ci,
               note="not comparable to published Inception Scores")
    if ev.alignment is not None:
        rec.metric(f"alignment {name}", ev.alignment, ci=ev.alignment_ci)


def compare(rec: Recorder, key: str, paper_says: str, a: tuple[str, Evaluation], b: tuple[str, Evaluation],
            metric: str, paper_expects_a_better: bool) -> str:
    """Record the claim "a beats b on metric" (or the reverse, per the paper) with our intervals."""
    (na, ea), (nb, eb) = a, b
    va, ca, _ = _metric(ea, metric)
    vb, cb, _ = _metric(eb, metric)
    won = better(ea, eb, metric)
    word = {True: "better than", False: "worse than", None: "not distinguishable from"}[won]
    agrees = None if won is None else won == paper_expects_a_better
    finding = f"{na} {fmt(va)} {fmt_ci(ca)} vs {nb} {fmt(vb)} {fmt_ci(cb)}: {word}"
    rec.claim(key, paper_says, finding, agrees)
    return f"{metric.upper()}: {na} {word} {nb}"


def scores_table(evaluations: dict[str, Evaluation]) -> str:
    """One Markdown row per model: FID, KID ×10³, IS-style and alignment, each with its interval."""
    lines = ["| model | FID | 95% CI | KID ×10³ | 95% CI | IS (EffNet) | 95% CI | alignment | 95% CI |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, ev in evaluations.items():
        s = ev.scores
        lines.append(f"| {name} | {fmt(s.fid)} | {fmt_ci(s.fid_ci)} | {fmt(s.kid * 1e3)} | {fmt_ci(s.kid_ci, 1e3)} "
                     f"| {fmt(s.inception_score)} | {fmt_ci(s.is_ci)} | {fmt(ev.alignment)} | {fmt_ci(ev.alignment_ci)} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ schedule sweep (Fig. A.5)


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


def sweep_top_shift(preset: str, levels: int, data: dict, budget: Budget, lower_shifts: Sequence[float],
                    grid: Sequence[float], evaluate, progress: bool = True) -> list[tuple[float, TrainResult, Evaluation]]:
    """Train and score the ``levels``-resolution model once per top-layer shift in ``grid``, the lower layers
    fixed at ``lower_shifts``. Returns (shift, run, evaluation) in grid order."""
    out = []
    for s in grid:
        shifts = (*lower_shifts, s)
        run = train_layered(preset, levels, data, budget, shifts=shifts, progress=progress,
                            label=f"shift{levels}-{shift_label(s).replace('log(1/', 'snr1over').rstrip(')')}")
        out.append((s, run, evaluate(run)))
    return out


def best_shift(results: list[tuple[float, TrainResult, Evaluation]]) -> tuple[float, list[float]]:
    """The shift with the lowest FID, and every shift whose FID interval overlaps the best one's (the set
    our measurement cannot tell apart from the best)."""
    best = min(results, key=lambda r: r[2].scores.fid)
    tied = [s for s, _, ev in results if ordered(ev.scores.fid_ci, best[2].scores.fid_ci) == 0]
    return best[0], tied


# ----------------------------------------------------------------------------- strategic cropping (3.1)


def training_speed(preset: str, levels: int, batch_size: int, crop_size: int | None, steps: int = 6,
                   warmup: int = 2, seed: int = 0) -> float:
    """Training images/s of one model (forward, eq. 3 loss, backward, AdamW step) on random data, with or
    without strategic cropping; the same caption states and the same batch for both, so only cropping
    differs."""
    torch.manual_seed(seed)
    mcfg = model_config(preset, levels)
    dcfg = DiffusionConfig.paper(mcfg.resolutions)
    dev = torch.device("cpu")
    layout = memory_format(dev, "fp32")
    model = place(build_model(mcfg).train(), dev, "fp32")  # laid out as ldlib.train lays it out
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(seed)
    top = mcfg.resolutions[-1]
    x0 = torch.rand(batch_size, 3, top, top, generator=g) * 2 - 1
    text = HashTextEncoder(dim=mcfg.text_dim).encode([f"caption {i}" for i in range(batch_size)])
    timings = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        t = torch.rand(batch_size, generator=g)
        eps0 = torch.randn(x0.shape, generator=g)
        crops = nested_crop_boxes(mcfg.resolutions, crop_size, g) if crop_size else None
        loss, _ = step_loss(model, x0, eps0, t, text, None, crops, dcfg, dev, "fp32", layout)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            timings.append(time.perf_counter() - start)
    return batch_size / float(np.median(timings))


def time_to_loss(run: TrainResult, images_per_s: float, batch_size: int, target: float, smooth: int = 20) -> float:
    """Seconds of training (at ``images_per_s``) until the smoothed loss first reaches ``target``; inf if never."""
    losses = np.asarray(run.losses, dtype=float)
    if len(losses) == 0:
        return float("inf")
    k = max(1, min(smooth, len(losses)))
    smoothed = np.convolve(losses, np.ones(k) / k, mode="valid")
    hit = np.nonzero(smoothed <= target)[0]
    return float("inf") if len(hit) == 0 else float((hit[0] + k) * batch_size / images_per_s)


@torch.no_grad()
def crop_consistency(preset: str, levels: int, crop_size: int, seed: int = 0, without_norms: bool = False) -> list[dict]:
    """How far a cropped forward pass (section 3.1) is from the uncropped one on the region it covers, per
    level: max |difference| over the whole crop and over its central half (away from the border, where zero
    padding replaces the neighbours; the crop must be wide enough for that, e.g. the second resolution's side). ``without_norms`` swaps GroupNorm for identity, which isolates the
    cropping geometry (GroupNorm's statistics of a crop differ from the whole image's by design)."""
    torch.manual_seed(seed)
    mcfg = model_config(preset, levels)
    model = build_model(mcfg).eval()
    if without_norms:
        for module in list(model.modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, torch.nn.GroupNorm):
                    setattr(module, child_name, torch.nn.Identity())
    for p in model.parameters():  # a zero-initialised head would make every comparison trivially equal
        p.add_(0.02 * torch.randn_like(p))
    g = torch.Generator().manual_seed(seed)
    z = [torch.randn(2, 3, r, r, generator=g) for r in mcfg.resolutions]
    t = torch.rand(2, generator=g)
    text = HashTextEncoder(dim=mcfg.text_dim).encode(["a red circle", "a blue square"])
    full = model(z, t, text.tokens, text.mask, text.pooled)
    crops = nested_crop_boxes(mcfg.resolutions, crop_size, g)
    part = model([c.apply(v) if c is not None else v for c, v in zip(crops, z)], t, text.tokens, text.mask,
                 text.pooled, None, crops)
    rows = []
    for k, crop in enumerate(crops):
        ref = full[k] if crop is None else crop.apply(full[k])
        diff = (part[k] - ref).abs()
        margin = 0 if crop is None else max(1, crop.size // 4)  # the central half of the crop
        inner = diff[..., margin:-margin, margin:-margin] if margin else diff
        rows.append({"resolution": mcfg.resolutions[k], "cropped to": crop.size if crop else mcfg.resolutions[k],
                     "max abs diff": float(diff.max()), "margin": margin, "max abs diff, central half": float(inner.max()),
                     "output scale": float(ref.abs().mean())})
    return rows


def equal_time_budget(budget: Budget, speed_ratio: float) -> Budget:
    """The budget in images that cropped training covers in the wall time full training takes, rounded to a
    sixteenth of the full run's steps so that small timing noise does not change the run (and its cache key)."""
    unit = max(1, budget.images // budget.batch_size // 16) * budget.batch_size
    images = max(unit, int(round(budget.images * speed_ratio / unit)) * unit)
    return Budget(images, budget.batch_size, budget.lr, budget.seed, budget.text_encoder)


def default_crop_size(preset: str) -> int:
    """Half the second resolution: the paper crops 256 -> 128 and 512 -> 256 within the previous crop."""
    return get_preset(preset).resolutions[1] // 2


# ------------------------------------------------------------------------------------- the verdicts


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


def _sweep_claim(rec: Recorder, levels: int, results, ratio: int) -> str:
    best, tied = best_shift(results)
    paper = PAPER_SHIFTS[ratio]
    for s, _, ev in results:
        rec.metric(f"FID, {levels}-resolution model, top shift {shift_label(s)}", ev.scores.fid, ci=ev.scores.fid_ci,
                   note="paper's choice" if abs(s - paper) < 1e-9 else
                   "simple diffusion's rule" if abs(s - simple_diffusion_shift(ratio, 1)) < 1e-9 else "")
    is_best = abs(best - paper) < 1e-9
    paper_tied = any(abs(s - paper) < 1e-9 for s in tied)
    agrees = True if is_best else (None if paper_tied else False)
    rec.claim(f"best top shift of the {levels}-resolution model is {shift_label(paper)}",
              f"the sweep picked {shift_label(paper)} for a layer {ratio}x the base (§2.3, Fig. A.5)",
              f"lowest FID at {shift_label(best)}; within its interval: {', '.join(map(shift_label, tied))}", agrees)
    return (f"{levels} resolutions: best top shift {shift_label(best)} (indistinguishable: "
            f"{', '.join(map(shift_label, tied))}); the paper's {shift_label(paper)} "
            f"{'is the best' if is_best else 'is among them' if paper_tied else 'is worse'}")


def record_sweeps(rec: Recorder, sweep2, sweep3) -> str:
    """Fig. A.5: the 2-resolution sweep, then the 3-resolution sweep at the best 2-resolution value."""
    lines = [_sweep_claim(rec, 2, sweep2, 2), _sweep_claim(rec, 3, sweep3, 4)]
    return "; ".join(lines)


def record_cropping(rec: Recorder, full_ips: float, crop_ips: float, full: TrainResult, cropped: TrainResult,
                    batch_size: int, ev_full: Evaluation, ev_crop: Evaluation) -> str:
    """Section 3.1: training speed with cropping, time to a loss, and FID at equal wall time."""
    ratio = crop_ips / full_ips
    rec.metric("training images/s, full images", full_ips)
    rec.metric("training images/s, strategic crops", crop_ips)
    rec.metric("training speed-up from cropping", ratio, note="the same model, batch and data; one run")
    rec.claim("cropping speeds up training", "cropping all inputs increased training speed (§3.1)",
              f"{crop_ips:.1f} vs {full_ips:.1f} images/s (x{ratio:.2f})", ratio > 1)
    tail = np.asarray(full.losses[-max(1, len(full.losses) // 10):], dtype=float)
    target = float(np.median(tail)) * 1.1
    t_full = time_to_loss(full, full_ips, batch_size, target)
    t_crop = time_to_loss(cropped, crop_ips, batch_size, target)
    for label, secs in (("full images", t_full), ("crops", t_crop)):
        if math.isfinite(secs):
            rec.metric(f"seconds to reach {target:.4f} training loss, {label}", secs,
                       note="1.1x full training's final loss; crops' loss covers the cropped region")
    reached = math.isfinite(t_full) and math.isfinite(t_crop)
    rec.claim("cropped training reaches a given loss sooner", "cropping increased training speed (§3.1)",
              f"time to loss {target:.4f}: crops {t_crop:.0f} s, full {t_full:.0f} s (inf: never reached)",
              (t_crop < t_full) if reached else None)
    record_scores(rec, "full images", ev_full)
    record_scores(rec, "crops, same wall time", ev_crop)
    found = compare(rec, "cropped training at equal wall time gives better FID",
                    "cropping accelerates convergence per unit of compute (§3.1, after Saharia et al.)",
                    ("cropped", ev_crop), ("full", ev_full), "fid", True)
    return f"speed-up x{ratio:.2f}; {found}"


def record_stacking(rec: Recorder, evals: Mapping[str, Evaluation], pairs: Sequence[tuple[str, str]]) -> str:
    """Table A.2 / Fig. A.7: stacked vs randomly initialised models at equal budget, FID and alignment."""
    for name, ev in evals.items():
        record_scores(rec, name, ev)
    found = []
    for stacked, fresh in pairs:
        found.append(compare(rec, f"{stacked} has better alignment than {fresh}",
                             "pre-loaded models showed enhanced text-image alignment (§3.2, Fig. A.7)",
                             (stacked, evals[stacked]), (fresh, evals[fresh]), "alignment", True))
        found.append(compare(rec, f"{stacked} has worse FID than {fresh}",
                             "stacking traded fidelity for alignment: FID rose (§3.2, Table A.2; the sentence is "
                             "ambiguous about which model's FID rose)",
                             (stacked, evals[stacked]), (fresh, evals[fresh]), "fid", False))
    return "; ".join(found)


def consistency_markdown(tables: Mapping[str, list[dict]]) -> str:
    """:func:`crop_consistency` rows of several variants as one Markdown table."""
    keys = list(next(iter(tables.values()))[0])
    lines = ["| variant | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for variant, rows in tables.items():
        for row in rows:
            lines.append(f"| {variant} | " + " | ".join(fmt(v) if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return "\n".join(lines)
