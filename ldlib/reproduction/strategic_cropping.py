"""Notebook 03, strategic cropping (section 3.1, Fig. A.6): whether the cropped forward pass equals the full
model on the region it covers, the training speed-up, time to a training loss, and FID at equal wall time.
"""

from __future__ import annotations

import math
import time
from typing import Mapping

import numpy as np
import torch

from ..config import DiffusionConfig, get_preset, model_config
from ..crop import nested_crop_boxes
from ..data.text import HashTextEncoder
from ..evaluation import Evaluation
from ..network import build_model
from ..runtime.device import memory_format, place
from ..training import TrainResult, step_loss
from .recorder import ANALYTIC, Recorder, fmt
from .study import Budget, compare, record_scores


def default_crop_size(preset: str) -> int:
    """Half the second resolution, the side every cropped level is cut to (``ldlib.crop.nested_crop_boxes``):
    the paper crops "all input images to 128x128" at 128/256/512 px, i.e. the 256 px level to a 128 px square
    and the 512 px level to a 128 px square inside that region at 512 px; the 128 px base stays whole."""
    return get_preset(preset).resolutions[1] // 2


@torch.no_grad()
def crop_consistency(preset: str, levels: int, crop_size: int, seed: int = 0, without_norms: bool = False) -> list[dict]:
    """How far a cropped forward pass (section 3.1) is from the uncropped one on the region it covers, per
    level: max |difference| over the whole crop and over its central half (away from the border, where zero
    padding replaces the neighbours; the crop must be wide enough for that, e.g. the second resolution's side).
    ``without_norms`` swaps GroupNorm for identity, which isolates the cropping geometry (GroupNorm's statistics
    of a crop differ from the whole image's by design)."""
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


def consistency_markdown(tables: Mapping[str, list[dict]]) -> str:
    """:func:`crop_consistency` rows of several variants as one Markdown table."""
    keys = list(next(iter(tables.values()))[0])
    lines = ["| variant | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for variant, rows in tables.items():
        for row in rows:
            lines.append(f"| {variant} | " + " | ".join(fmt(v) if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return "\n".join(lines)


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
    model = place(build_model(mcfg).train(), dev, "fp32")  # laid out as ldlib.training lays it out
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


def equal_time_budget(budget: Budget, speed_ratio: float) -> Budget:
    """The budget in images that cropped training covers in the wall time full training takes, rounded to a
    sixteenth of the full run's steps so that small timing noise does not change the run (and its cache key)."""
    unit = max(1, budget.images // budget.batch_size // 16) * budget.batch_size
    images = max(unit, int(round(budget.images * speed_ratio / unit)) * unit)
    return Budget(images, budget.batch_size, budget.lr, budget.seed, budget.text_encoder)


# ------------------------------------------------------------------------------------------- verdicts


def record_cropping(rec: Recorder, full_ips: float, crop_ips: float, full: TrainResult, cropped: TrainResult,
                    batch_size: int, ev_full: Evaluation, ev_crop: Evaluation) -> str:
    """Section 3.1: training speed with cropping, time to a loss, and FID at equal wall time."""
    ratio = crop_ips / full_ips
    rec.metric("training images/s, full images", full_ips)
    rec.metric("training images/s, strategic crops", crop_ips)
    rec.metric("training speed-up from cropping", ratio, note="the same model, batch and data; one run")
    rec.claim("cropping speeds up training", "cropping all inputs increased training speed (§3.1)",
              f"{crop_ips:.1f} vs {full_ips:.1f} images/s (x{ratio:.2f})", ratio > 1,
              kind=ANALYTIC)  # fewer pixels per step by design; the measurement gives its size
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
