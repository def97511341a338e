"""Notebook 03, strategic cropping (section 3.1, Fig. A.6): whether the cropped forward pass equals the full
model on the region it covers, the training speed-up, and quality against training time: full and cropped
training of the same model, once per training seed, evaluated along a budget curve whose cropped points are
the full points' wall times (time-to-quality curves), compared at equal wall time by the paired difference.
"""

from __future__ import annotations

import json
import time
from typing import Mapping, Sequence

import numpy as np
import torch

from ..config import DiffusionConfig, get_preset, model_config
from ..crop import nested_crop_boxes
from ..data.text import HashTextEncoder
from ..evaluation import Evaluation, paired_difference
from ..network import build_model
from ..runtime.device import memory_format, place, resolve_precision
from ..training import TrainResult, step_loss
from .recorder import ANALYTIC, Recorder, fmt
from .study import Study, compare, pairing, record_scores


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
    without strategic cropping, in the precision training uses on this CPU; the same caption states and the
    same batch for both, so only cropping differs."""
    torch.manual_seed(seed)
    mcfg = model_config(preset, levels)
    dcfg = DiffusionConfig.paper(mcfg.resolutions)
    dev = torch.device("cpu")
    precision = resolve_precision("auto", dev)  # what training uses on this CPU
    layout = memory_format(dev, precision)
    model = place(build_model(mcfg).train(), dev, precision)  # laid out as ldlib.training lays it out
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
        loss, _ = step_loss(model, x0, eps0, t, text, None, crops, dcfg, dev, precision, layout)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            timings.append(time.perf_counter() - start)
    return batch_size / float(np.median(timings))


def _speed_file(preset: str, levels: int, batch_size: int, crop_size: int | None, steps: int, seed: int):
    """Where :func:`measured_training_speed` keeps its measurement, and the key it is kept under."""
    from ..runtime.cache import cache_root, code_fingerprint
    from .run_cache import TRAINING_CODE, key_digest
    from .runner import device_info

    machine = {k: v for k, v in device_info().items() if k in ("cpu", "cpu_count", "torch_threads", "cpu_capability",
                                                                 "cuda")}
    key = dict(preset=preset, levels=levels, batch_size=batch_size, crop_size=crop_size, steps=steps, seed=seed,
               machine=machine, torch=torch.__version__, training_code=code_fingerprint(TRAINING_CODE))
    return cache_root() / "speeds" / f"{preset}-{levels}-crop{crop_size or 0}-{key_digest(key)}.json", key


def stored_training_speed(preset: str, levels: int, batch_size: int, crop_size: int | None, steps: int = 6,
                          seed: int = 0) -> float | None:
    """:func:`measured_training_speed` if this machine measured it already, else None (nothing is measured)."""
    from ..runtime.files import read_json

    stored = read_json(_speed_file(preset, levels, batch_size, crop_size, steps, seed)[0])
    return float(stored["images_per_s"]) if "images_per_s" in stored else None


def measured_training_speed(preset: str, levels: int, batch_size: int, crop_size: int | None, steps: int = 6,
                            seed: int = 0) -> float:
    """:func:`training_speed`, measured once per machine and training code and read back from the cache after.

    Notebook 03's equal-wall-time budgets are derived from this speed, so a fresh measurement at every execution
    would make a rerun over the same cache ask for other runs (on one machine: 2.21x, then 2.12x, which fall on
    either side of a rounding step of :func:`equal_time_images`: 28,800 vs 27,200 cropped images). A measurement
    taken beside other work is kept too: delete its file under ``speeds/`` in the cache to measure again."""
    from ..runtime.files import atomic_write_text

    stored = stored_training_speed(preset, levels, batch_size, crop_size, steps, seed)
    if stored is not None:  # an unreadable file reads as not measured: measured again
        return stored
    path, key = _speed_file(preset, levels, batch_size, crop_size, steps, seed)
    images_per_s = training_speed(preset, levels, batch_size, crop_size, steps, seed=seed)
    atomic_write_text(path, json.dumps({**key, "images_per_s": images_per_s,
                                        "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))
    return images_per_s


def time_to_loss(run: TrainResult, images_per_s: float, batch_size: int, target: float, smooth: int = 20) -> float:
    """Seconds of training (at ``images_per_s``) until the smoothed loss first reaches ``target``; inf if never."""
    losses = np.asarray(run.losses, dtype=float)
    if len(losses) == 0:
        return float("inf")
    k = max(1, min(smooth, len(losses)))
    smoothed = np.convolve(losses, np.ones(k) / k, mode="valid")
    hit = np.nonzero(smoothed <= target)[0]
    return float("inf") if len(hit) == 0 else float((hit[0] + k) * batch_size / images_per_s)


def equal_time_images(images: int, speed_ratio: float, batch_size: int) -> int:
    """The images cropped training covers in the wall time full training needs for ``images``, in whole
    batches. The speed ratio is rounded to an eighth first, so that timing noise does not move the budget (and
    with it the milestones the cropped runs are asked for)."""
    ratio = max(1, round(speed_ratio * 8)) / 8
    return max(batch_size, int(round(images * ratio / batch_size)) * batch_size)


def equal_time_curves(study: Study, levels: int, budgets: Sequence[int], crop_size: int, speed_ratio: float):
    """Full and cropped training of the ``levels``-resolution model along the budget curve, once per training seed
    of ``study``: full at ``budgets`` (images; Table 1's layered runs), cropped at the same wall times
    (:func:`equal_time_images` with the measured ``speed_ratio``, crops / full), each point scored with the
    study's protocols (``Study.evaluate_curve``). Returns (full runs, cropped runs, their evaluations), each by
    budget."""
    crop_budgets = [equal_time_images(b, speed_ratio, study.budget.batch_size) for b in budgets]
    full = study.curve(levels, budgets)
    cropped = study.curve(levels, crop_budgets, crop_size=crop_size, label=f"crop{crop_size}")
    return full, cropped, study.evaluate_curve(full), study.evaluate_curve(cropped)


# ------------------------------------------------------------------------------------------- verdicts


def time_axis(evaluations: Mapping[int, Sequence[Evaluation]], images_per_s: float) -> dict[float, list[float]]:
    """FID per seed against training seconds (images seen / measured images/s): a time-to-quality curve."""
    return {b / images_per_s: [e.scores.fid for e in evs] for b, evs in sorted(evaluations.items())}


def equal_time_differences(ev_full: Mapping[int, Sequence[Evaluation]], ev_crop: Mapping[int, Sequence[Evaluation]],
                           full_ips: float) -> dict[float, tuple[float, tuple[float, float]]]:
    """FID crops - full at each equal-wall-time pair of the curves (the i-th budgets of each), keyed by the full
    run's training seconds: the paired difference across seeds and its 95% interval."""
    return {bf / full_ips: paired_difference(ev_crop[bc], ev_full[bf], "fid")[:2]
            for bf, bc in zip(sorted(ev_full), sorted(ev_crop))}


def record_cropping(rec: Recorder, full_ips: float, crop_ips: float, full: Mapping[int, Sequence[TrainResult]],
                    ev_full: Mapping[int, Sequence[Evaluation]], ev_crop: Mapping[int, Sequence[Evaluation]],
                    batch_size: int) -> str:
    """Section 3.1: the training speed-up, time to a training loss (per seed), and FID at equal wall time along
    the curve (``ev_crop``'s budgets are ``ev_full``'s times the speed-up, in order); the claim is read at the
    largest budget."""
    ratio = crop_ips / full_ips
    rec.metric("training images/s, full images", full_ips)
    rec.metric("training images/s, strategic crops", crop_ips)
    rec.metric("training speed-up from cropping", ratio, note="the same model, batch and data; one run")
    rec.claim("cropping speeds up training", "cropping all inputs increased training speed (§3.1)",
              f"{crop_ips:.1f} vs {full_ips:.1f} images/s (x{ratio:.2f})", ratio > 1,
              kind=ANALYTIC)  # fewer pixels per step by design; the measurement gives its size
    last = full[max(full)]
    target = float(np.median([np.median(r.losses[-max(1, len(r.losses) // 10):]) for r in last])) * 1.1
    seconds = [time_to_loss(r, full_ips, batch_size, target) for r in last]
    if all(np.isfinite(seconds)):  # the smoothed loss may stay above the target in a very short run
        rec.metric(f"seconds to reach {target:.4f} training loss, full images (mean over seeds)",
                   float(np.mean(seconds)), note="1.1x full training's final loss; the crops' loss covers only "
                                                 "the cropped region, so it is not compared")
    for (bf, bc), (d, ci) in zip(zip(sorted(ev_full), sorted(ev_crop)),
                                 equal_time_differences(ev_full, ev_crop, full_ips).values()):
        rec.metric(f"FID crops - full at equal wall time, full training {bf} images", d, ci=ci,
                   note=f"{bf / full_ips:.0f} s of training: crops {bc} images; {pairing(len(ev_full[bf]))}; "
                        f"< 0: crops better")
    (bf, a), (bc, b) = max(ev_full.items()), max(ev_crop.items())
    record_scores(rec, f"full images ({bf} images)", a)
    record_scores(rec, f"crops, same wall time ({bc} images)", b)
    found = compare(rec, "cropped training at equal wall time gives better FID",
                    "cropping accelerates convergence per unit of compute (§3.1, after Saharia et al.)",
                    ("cropped", b), ("full", a), "fid", True)
    return f"speed-up x{ratio:.2f}; {found}"
