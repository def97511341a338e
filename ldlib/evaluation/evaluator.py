"""Evaluating a trained model the way Table 1 does: sample for a set of prompts, then FID / KID against a
reference set, an IS-style score, and text alignment, each with its uncertainty and its protocol.

    prompts (captions of the reference set) -> ldlib.sampler.sample (seeded, batched) -> images
    images vs reference -> ldlib.evaluation.metrics (FID, KID, IS-style, bootstrap intervals)
    images vs prompts   -> ldlib.evaluation.alignment (shapes: attribute accuracy) or
                           ldlib.evaluation.retrieval (captioned data: top-1 retrieval accuracy of the prompt
                           among other reference captions)

``Evaluator`` fixes one such protocol for every model a notebook compares (reference per resolution, judge,
sampler settings) and stores each result in the run's folder under a key that covers the protocol and the
source of every module the evaluation runs, so notebooks share evaluations as they share runs, and a change
of evaluation code evaluates again. :func:`better` compares two evaluations by their intervals.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..config import DiffusionConfig
from ..data.datasets import from_spec, load_dataset
from ..data.images import CaptionedImages, to_float, to_uint8
from ..data.text import encode_unique, make_encoder
from ..pyramid import downsample
from ..runtime import distributed, records
from ..runtime.cache import cache_root, code_fingerprint
from ..runtime.files import atomic_write_text, json_default
from ..runtime.progress import report
from ..sampler import METHODS, sample
from ..training.checkpoint import load_model
from . import metrics
from .alignment import AttributeClassifier, attribute_accuracy, train_classifier
from .retrieval import ImageTextMatcher, retrieval_accuracy, train_matcher

#: The modules whose source decides an evaluation's numbers (with everything they import).
EVALUATION_CODE = (__name__,)
#: ... and a reference set's stored features.
FEATURES_CODE = ("ldlib.evaluation.metrics",)
#: ... and a stored alignment judge (matcher).
MATCHER_CODE = ("ldlib.evaluation.retrieval",)
#: The bootstrap behind paired differences (:func:`paired_difference`), fixed so that replicates stored in a
#: record (:meth:`Evaluation.to_record`) pair with any other evaluation's of the same size.
PAIRED_BOOT, PAIRED_SEED = 200, 0
#: The metrics with a per-sample statistic, hence a paired bootstrap (alignment is not stored per sample).
PAIRED_METRICS = ("fid", "kid", "is")
#: Samples a record keeps for sample grids (the notebooks' ``grid_prompts`` is at most 16).
GRID_SAMPLES = 16


@dataclass
class Evaluation:
    scores: metrics.Scores
    alignment: float | None
    alignment_ci: tuple[float, float] | None
    samples: torch.Tensor  # uint8 (N, 3, R, R), the top resolution (a record's: its first GRID_SAMPLES)
    features: metrics.Features | None = None  # the samples' pool3 features and classifier logits
    seconds: dict = field(default_factory=dict)  # wall time of its parts (sampling, features, scores)
    #: the reference's pool3 features it was scored against (set by the Evaluator, not stored with it): what a
    #: paired difference between two evaluations needs (:func:`paired_difference`)
    reference: np.ndarray | None = field(default=None, repr=False)
    #: per metric, the statistic and its bootstrap replicates (:func:`paired_replicates`); filled on first use,
    #: or read from a record where the features are not at hand
    paired: dict = field(default_factory=dict, repr=False)
    #: a record's rescorings of its first n samples (:meth:`first`), by n
    prefixes: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: dict, samples: torch.Tensor, features: metrics.Features | None = None) -> "Evaluation":
        ci = lambda v: tuple(v) if v is not None else None  # noqa: E731
        scores = metrics.Scores(d["fid"], ci(d["fid_ci"]), d["kid"], ci(d["kid_ci"]), d["is_efficientnet"],
                                ci(d["is_ci"]), metrics.Protocol(**d["protocol"]), d.get("precision"), d.get("recall"))
        return cls(scores, d["alignment"], ci(d["alignment_ci"]), samples, features, d.get("seconds", {}))

    def save(self, folder: Path) -> None:
        """Samples, their features and the scores in ``folder`` (scores last: their presence marks it complete)."""
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"samples": self.samples.contiguous()}, str(folder / "samples.safetensors"))
        if self.features is not None:
            save_file(self.features.as_tensors(), str(folder / "features.safetensors"))
        atomic_write_text(folder / "scores.json", json.dumps(self.as_dict(), default=json_default))

    @classmethod
    def load(cls, folder: Path) -> "Evaluation | None":
        """What :meth:`save` wrote, or None when ``folder`` holds no complete evaluation."""
        if not ((folder / "scores.json").exists() and (folder / "samples.safetensors").exists()):
            return None
        feats = folder / "features.safetensors"
        features = metrics.Features.from_tensors(load_file(str(feats))) if feats.exists() else None
        return cls.from_dict(json.loads((folder / "scores.json").read_text()),
                             load_file(str(folder / "samples.safetensors"))["samples"], features)

    def as_dict(self) -> dict:
        s = self.scores
        return {"fid": s.fid, "fid_ci": s.fid_ci, "kid": s.kid, "kid_ci": s.kid_ci, "is_efficientnet": s.inception_score,
                "is_ci": s.is_ci, "precision": s.precision, "recall": s.recall, "alignment": self.alignment, "alignment_ci": self.alignment_ci,
                "protocol": s.protocol.as_dict(), "seconds": self.seconds}

    def first(self, n: int, n_boot: int, seed: int) -> "Evaluation":
        """This evaluation's first ``n`` samples scored alone (bootstrap ``n_boot``, ``seed``), with no text
        alignment (not stored per sample): rescored from the stored features, or read from a record's prefix
        (:meth:`to_record`). ValueError when neither is at hand."""
        p = self.scores.protocol
        kept = self.prefixes.get(n)
        if self.features is None or self.reference is None:
            if kept is None or (kept["n_boot"], kept["seed"]) != (n_boot, seed):
                raise ValueError(f"the first {n} of {p.n_generated} samples cannot be rescored: no stored features, "
                                 f"and no record of them with bootstrap ({n_boot}, seed {seed})")
            return Evaluation.from_record(kept, self.samples[:n])
        features = metrics.Features(self.features.pool3[:n], None if self.features.logits is None else self.features.logits[:n])
        scores = metrics.scores(self.reference, features, replace(p, n_generated=n), n_boot, seed)
        return Evaluation(scores, None, None, self.samples[:n], features, reference=self.reference)

    def to_record(self, prefixes: Sequence[int] = (), n_boot: int = 50, seed: int = 0) -> dict:
        """What this evaluation measured, in tens of kB (``ldlib.runtime.records``): its scores, the bootstrap
        replicates of every paired metric (:func:`paired_replicates`) and, per n in ``prefixes`` below its
        sample count, the same for its first n samples (:meth:`first`, bootstrap ``n_boot``, ``seed``). Needs
        the features and the reference."""
        out = {"scores": self.as_dict(), "n_boot": n_boot, "seed": seed,
               "paired": {m: r for m in PAIRED_METRICS if (r := paired_replicates(self, m)) is not None}}
        below = sorted(n for n in set(prefixes) if n < self.scores.protocol.n_generated)
        out["prefixes"] = {str(n): self.first(n, n_boot, seed).to_record((), n_boot, seed) for n in below}
        return out

    @classmethod
    def from_record(cls, record: dict, samples: torch.Tensor) -> "Evaluation":
        """The evaluation :meth:`to_record` kept, with ``samples`` (the record's first ones) and no features."""
        ev = cls.from_dict(record["scores"], samples)
        ev.paired = record.get("paired", {})
        ev.prefixes = {int(n): r for n, r in record.get("prefixes", {}).items()}
        return ev


def metric_value(ev: Evaluation, metric: str) -> tuple[float, tuple[float, float], bool]:
    """(value, 95% interval, lower_is_better) of ``metric`` in fid | kid | is | alignment."""
    s = ev.scores
    table = {"fid": (s.fid, s.fid_ci, True), "kid": (s.kid, s.kid_ci, True),
             "is": (s.inception_score, s.is_ci, False), "alignment": (ev.alignment, ev.alignment_ci, False)}
    if metric not in table:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(table)}")
    return table[metric]


def ordered(a: tuple[float, float], b: tuple[float, float]) -> int:
    """-1 when interval ``a`` lies wholly below ``b``, +1 when wholly above, 0 when they overlap."""
    if a[1] < b[0]:
        return -1
    if a[0] > b[1]:
        return 1
    return 0


def better(a: Evaluation, b: Evaluation, metric: str) -> bool | None:
    """Is ``a`` better than ``b`` on ``metric``? None when their 95% intervals overlap."""
    _, ca, lower = metric_value(a, metric)
    _, cb, _ = metric_value(b, metric)
    side = ordered(ca, cb)
    return None if side == 0 else (side < 0) == lower


def _statistic(ev: Evaluation, metric: str, seed: int):
    """(per-sample array, its resampled statistic) for a paired bootstrap, or None when ``ev`` lacks what it
    needs (features, the reference's features; alignment is not stored per sample)."""
    f, real = ev.features, ev.reference
    if f is None or metric not in PAIRED_METRICS or (real is None and metric != "is"):
        return None
    rows = f.logits if metric == "is" else f.pool3
    return None if rows is None else (rows, metrics.resampled_statistic(metric, real, len(rows), seed))


def paired_replicates(ev: Evaluation, metric: str, n_boot: int = PAIRED_BOOT, seed: int = PAIRED_SEED) -> dict | None:
    """``ev``'s half of a paired bootstrap on ``metric``: the statistic on all its samples and on ``n_boot``
    resamples (``metrics.bootstrap_replicates``: the b-th resample's indices are the same for every evaluation
    of the same size, so two evaluations' replicates pair up draw by draw). Computed from the features once
    and kept on ``ev`` (and in its record); None when neither features nor a record give it."""
    kept = ev.paired.get(metric)
    if kept is not None and (kept["n_boot"], kept["seed"]) == (n_boot, seed):
        return kept
    found = _statistic(ev, metric, seed)
    if found is None:
        return None
    rows, statistic = found
    ev.paired[metric] = {"n": len(rows), "n_boot": n_boot, "seed": seed, "full": float(statistic(rows)),
                         "replicates": metrics.bootstrap_replicates(statistic, rows, n_boot, seed)}
    return ev.paired[metric]


def paired_difference(a: Sequence[Evaluation], b: Sequence[Evaluation], metric: str, n_boot: int = PAIRED_BOOT,
                      seed: int = PAIRED_SEED) -> tuple[float, tuple[float, float], int]:
    """The difference ``metric(a) - metric(b)`` with its 95% interval, for arms given as one evaluation per
    training seed (``a[i]`` and ``b[i]`` share seed index, prompts and sampling noise): per seed a paired
    bootstrap over prompts (``metrics.paired_bootstrap``, here from each side's :func:`paired_replicates`, so
    a side known only from its record pairs as well), then ``metrics.across_seeds``. Where per-sample data is
    missing (alignment) the per-seed spread comes from the two intervals as if independent. Returns
    (difference, interval, seeds)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"arms need one evaluation per seed each, got {len(a)} and {len(b)}")
    diffs, sds = [], []
    for ea, eb in zip(a, b):
        if ea.samples.shape[-1] != eb.samples.shape[-1]:
            raise ValueError("a paired difference compares models at one resolution (one reference)")
        ra, rb = paired_replicates(ea, metric, n_boot, seed), paired_replicates(eb, metric, n_boot, seed)
        if ra is not None and rb is not None and ra["n"] == rb["n"]:
            d, sd = ra["full"] - rb["full"], float(np.std(np.subtract(ra["replicates"], rb["replicates"])))
        else:
            (va, ca, _), (vb, cb, _) = metric_value(ea, metric), metric_value(eb, metric)
            d, sd = va - vb, float(np.hypot(ca[1] - ca[0], cb[1] - cb[0])) / (2 * 1.96)
        diffs.append(d)
        sds.append(sd)
    mean, ci = metrics.across_seeds(diffs, sds)
    return mean, ci, len(a)


def across_seed_value(evaluations: Sequence[Evaluation], metric: str) -> tuple[float, tuple[float, float]]:
    """One model's ``metric`` over its training seeds: the mean and its 95% interval (``metrics.across_seeds``:
    Student's t across seeds, each seed's sample interval nested inside; one seed gives that seed's interval)."""
    values = [metric_value(e, metric) for e in evaluations]
    return metrics.across_seeds([v for v, _, _ in values], [(ci[1] - ci[0]) / (2 * 1.96) for _, ci, _ in values])


def generate(model, diffusion: DiffusionConfig, encoder, prompts: list[str], steps: int, guidance: float, seed: int,
             batch_size: int = 32, progress: bool = True, method: str = "ddim", label: str = "model",
             partial: Path | None = None) -> torch.Tensor:
    """Top-resolution samples (uint8) for every prompt; batch ``j`` uses seed ``seed + j``. Under torchrun the
    batches are dealt out round-robin to the ranks and gathered, so every rank gets the one-process result.
    ``partial``: a folder where each finished batch is kept, so that an interrupted evaluation resumes at the
    batch it stopped in (the batches are independent: batch j's samples depend only on its prompts and seed)."""
    ctx = distributed.current()
    starts = list(range(0, len(prompts), batch_size))
    mine = {}
    for j in tqdm(range(ctx.rank, len(starts), ctx.world), disable=not (progress and ctx.is_main), desc="sampling"):
        kept = partial / f"batch-{j:05d}.safetensors" if partial is not None else None
        if kept is not None and kept.exists():
            mine[j] = load_file(str(kept))["images"]
            continue
        text = encoder.encode(prompts[starts[j] : starts[j] + batch_size])
        mine[j] = to_uint8(sample(model, diffusion, text, steps=steps, guidance=guidance, method=method,
                                  seed=seed + j).top)
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            save_file({"images": mine[j].contiguous()}, str(kept.with_suffix(".tmp")))
            os.replace(kept.with_suffix(".tmp"), kept)  # whole batches only: a kill mid-write leaves none
        if ctx.is_main:
            report("sampling", f"{label} ({method}, {steps} steps)", j + 1, len(starts))
    everything = distributed.gather_indexed(mine, ctx)
    return torch.cat([everything[j] for j in range(len(starts))])


def _binomial_ci(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    half = z * np.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))
    return max(0.0, p - half), min(1.0, p + half)


def evaluate_model(
    model,
    diffusion: DiffusionConfig,
    encoder,
    reference: CaptionedImages,
    n_samples: int,
    steps: int = 25,
    guidance: float = 3.0,
    seed: int = 0,
    classifier: AttributeClassifier | None = None,
    matcher: ImageTextMatcher | None = None,
    reference_features: np.ndarray | None = None,
    n_boot: int = 50,
    progress: bool = True,
    method: str = "ddim",
    label: str = "model",
    reference_name: str = "reference images",
    partial: Path | None = None,
) -> Evaluation:
    """Sample ``n_samples`` images for the first ``n_samples`` reference captions (cycled) with ``method`` and
    ``steps``, and score them. Alignment uses ``classifier`` on shapes (attributes known), else ``matcher``
    (retrieval accuracy). ``partial`` keeps finished sampling batches there (:func:`generate`)."""
    idx = [i % len(reference) for i in range(n_samples)]
    prompts = [reference.captions[i] for i in idx]
    clock = [time.perf_counter()]
    fake = generate(model, diffusion, encoder, prompts, steps, guidance, seed, progress=progress, method=method,
                    label=label, partial=partial)
    real = reference.images
    if real.shape[-1] != fake.shape[-1]:
        real = to_uint8(downsample(to_float(real), fake.shape[-1]))
    protocol = metrics.Protocol(
        reference=f"{len(real)} {reference_name} at {real.shape[-1]}px", n_reference=len(real), n_generated=n_samples,
        prompts="the reference captions, in order, cycled", seeds=f"batch j uses seed {seed} + j",
        guidance=guidance, sampler_steps=steps, sampler=method,
    )
    if reference_features is None:
        reference_features = metrics.extract(metrics.inception(), real, progress=progress)
    clock.append(time.perf_counter())
    features = metrics.image_features(fake, progress=progress)
    clock.append(time.perf_counter())
    scores = metrics.scores(reference_features, features, protocol, n_boot=n_boot, seed=seed)
    alignment = ci = None
    if classifier is not None and reference.attributes and "objects" in reference.attributes[0]:
        result = attribute_accuracy(classifier, fake, [reference.attributes[i] for i in idx])
        alignment, ci = result.accuracy, _binomial_ci(result.accuracy, n_samples)
    elif matcher is not None:
        text, index = encode_unique(encoder, reference.captions)
        alignment = retrieval_accuracy(matcher, fake, text, index[torch.tensor(idx)], seed=seed)
        ci = _binomial_ci(alignment, n_samples)
    clock.append(time.perf_counter())
    seconds = dict(zip(("sampling", "features", "scores"), np.diff(clock).tolist()))
    return Evaluation(scores, alignment, ci, fake, features, seconds)


def corruption_sanity(reference: torch.Tensor, features: np.ndarray, levels: dict[str, list[float]], seed: int = 0,
                      progress: bool = True) -> dict[str, list[float]]:
    """FID between one random half of the reference (``metrics.split_halves``) and the other half degraded
    at each level. Level 0 would give the split-half floor (``metrics.half_split_floor``); a sound metric
    grows with every step of corruption."""
    a, b = metrics.split_halves(len(reference), seed)
    mu, sigma = metrics.gaussian_stats(features[a])
    # the degraded halves are seeded, hence the same at every execution: their features are stored like a
    # reference's (at default, six levels of 500 images: ~10 minutes of Inception on two cores otherwise)
    return {kind: [metrics.frechet_distance_to(mu, sigma, stored_features(
                metrics.corrupt(reference[b], kind, v, seed=seed), progress=progress))
                for v in values]
            for kind, values in levels.items()}


# ----------------------------------------------------------------------------------------- reference


#: The reference splits an evaluation can compare with: ``train`` is the primary protocol (prompts are training
#: captions, the reference is training images: the distribution the models learn, as COCO's val captions are
#: for the paper's); ``val`` holds concepts never seen in training (generalisation to unseen concepts).
SPLITS = {"train": "training images (in-distribution)", "val": "held-out concepts (unseen in training)"}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def reference_sets(spec: dict, resolutions, n_reference: int = 1000, split: str = "train") -> dict[int, CaptionedImages]:
    """The real images FID/KID compare against, per resolution, and whose captions are the prompts: a fixed
    random subset of ``n_reference`` images of ``split`` of ``spec``'s data set (the same subset for every
    seed and notebook, so paired comparisons share it; ``shapes``' val split is drawn from held-out seeds; a
    folder serves as its own reference)."""
    return {res: _fixed_subset(_split_data(spec, res, split, n_reference), n_reference)[0] for res in resolutions}


def other_real_images(spec: dict, resolution: int, n: int, n_reference: int = 1000, split: str = "train") -> torch.Tensor:
    """Up to ``n`` real images of the split that are not in its reference set (:func:`reference_sets`): scored
    against the reference, they give the metric's floor at ``n`` samples, what a model drawing real images of
    the same distribution would get (``Evaluator.floor_at``)."""
    data = _split_data(spec, resolution, split, n_reference)
    _, rest = _fixed_subset(data, n_reference)
    return data.images[rest[:n]]


def _split_data(spec: dict, res: int, split: str, n_reference: int) -> CaptionedImages:
    _check_split(split)
    kind = spec["kind"]
    if kind == "shapes":
        return load_dataset("shapes", split, res, n=n_reference if split == "val" else spec.get("n", 2048),
                            seed=spec.get("seed", 0))
    if kind == "folder":
        return load_dataset("folder", "train", res, root=spec["root"])
    rest = {k: v for k, v in spec.items() if k not in ("kind", "split")}
    return load_dataset(kind, split, res, **rest)


def _fixed_subset(data: CaptionedImages, n: int) -> tuple[CaptionedImages, list[int]]:
    """A seeded random subset of ``n`` items (all when there are fewer) in that random order, and the indices of
    the others in a seeded random order. Not in the data set's order: a protocol with fewer samples prompts with
    the first captions, which must be a random sample of the reference (emoji3d's first 256 in its own order
    are 32% flags against 8.5% of the whole)."""
    order = np.random.default_rng(0).permutation(len(data)).tolist()
    keep = order[:n]
    return (CaptionedImages(data.images[keep], [data.captions[i] for i in keep],
                            [data.attributes[i] for i in keep] if data.attributes else []), order[n:])


# -------------------------------------------------------------------------------------- alignment judge


@dataclass
class Judge:
    """What scores text alignment, and how well it does on real reference images (the ceiling)."""

    label: str
    classifier: object = None  # shapes: ldlib.evaluation.alignment.AttributeClassifier
    matcher: object = None  # captioned data: ldlib.evaluation.retrieval.ImageTextMatcher
    ceiling: float = float("nan")
    chance: float | None = None


def alignment_judge(spec: dict, reference: CaptionedImages, encoder, seed: int = 0, steps: int = 600,
                    progress: bool = True) -> Judge:
    """Shapes: an attribute classifier trained on real shapes (exact). Other data: a contrastive image-text
    matcher trained on the training split; retrieval accuracy among 32 captions (chance 1/32)."""
    if spec["kind"] == "shapes":
        # train_classifier runs 4 epochs of batch 64: size its set so that it takes about ``steps`` steps
        clf, acc = train_classifier(n=max(256, steps * 16), seed=seed, progress=progress)
        return Judge("attribute accuracy (shapes classifier)", classifier=clf, ceiling=acc.accuracy)
    train = from_spec(spec, 64)
    text, index = encode_unique(encoder, train.captions)
    matcher = stored_matcher(train.images, text, index, steps=steps, seed=seed, progress=progress)
    ref_text, ref_index = encode_unique(encoder, reference.captions)
    ceiling = retrieval_accuracy(matcher, reference.images, ref_text, ref_index, seed=seed)
    return Judge("retrieval accuracy among 32 captions (ldlib matcher, not CLIP)", matcher=matcher,
                 ceiling=ceiling, chance=1 / 32)


def _content_hash(*tensors: torch.Tensor, extra: list) -> str:
    """A digest of the tensors' bytes and shapes and of ``extra`` (JSON-able): a stored file's name by content."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    h.update(json.dumps([*(list(t.shape) for t in tensors), *extra]).encode())
    return h.hexdigest()[:16]


def stored_matcher(images: torch.Tensor, text, index: torch.Tensor, steps: int, seed: int,
                   progress: bool = True) -> ImageTextMatcher:
    """The alignment judge's image-text matcher (``retrieval.train_matcher``), trained once per training set,
    caption encoding, steps and seed and stored in the cache (``judges/``) under a hash of them and of the
    matcher's code, so every notebook and re-run that uses the same judge reads it back (~3.5 minutes of
    training on two cores otherwise) and scores with bitwise the same weights."""
    key = _content_hash(images, text.pooled, index, extra=[steps, seed, code_fingerprint(MATCHER_CODE)])
    path = cache_root() / "judges" / f"matcher-{key}.safetensors"
    if path.exists():
        matcher = ImageTextMatcher(text.pooled.shape[-1])
        matcher.load_state_dict(load_file(str(path)))
        return matcher.eval()
    matcher = train_matcher(images, text, index, steps=steps, seed=seed, progress=progress)
    _store({k: v.contiguous() for k, v in matcher.state_dict().items()}, path)
    return matcher


def stored_features(images: torch.Tensor, progress: bool = True) -> np.ndarray:
    """Pool3 features of a real image set, computed once and stored in the cache (``features/``) under a hash of
    the images themselves, the feature network and the metrics code: every notebook, and every re-run, that
    compares with the same reference reads them back instead of running Inception again."""
    key = _content_hash(images, extra=[metrics.FEATURE_NETWORKS, code_fingerprint(FEATURES_CODE)])
    path = cache_root() / "features" / f"pool3-{key}.safetensors"
    if path.exists():
        return load_file(str(path))["pool3"].numpy()
    features = metrics.extract(metrics.inception(), images, progress=progress)
    _store({"pool3": torch.from_numpy(features)}, path)
    return features


def _store(tensors: dict[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)  # a reader never sees half a file


# ---------------------------------------------------------------------------------------- evaluator


class Evaluator:
    """One evaluation protocol for every model a notebook compares: the reference set per resolution (its
    Inception features computed once and stored, :func:`stored_features`), the alignment judge (trained once
    and stored, :func:`stored_matcher`) and the sampler settings (``method``, ``steps``, ``guidance``). ``split``
    picks the reference (:data:`SPLITS`); ``judge_steps=0`` scores no text alignment (no judge is trained).

    ``evaluator(run)`` samples and scores a trained run (``ldlib.training.TrainResult``). Results are stored in
    the run's folder under a hash of the protocol and of the evaluation code (:data:`EVALUATION_CODE` and every
    ldlib module it imports), so another notebook asking the same question of the same model gets the stored
    answer instead of sampling again, and changed evaluation code computes it anew.
    """

    def __init__(self, spec: dict, n_samples: int, steps: int, guidance: float, seed: int = 0,
                 text_encoder: str = "minilm", n_reference: int = 1000, judge_steps: int = 600, n_boot: int = 50,
                 progress: bool = True, method: str = "ddim", split: str = "train", prefixes: Sequence[int] = ()):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        _check_split(split)
        self.split = split
        self.prefixes = tuple(prefixes)  # the smaller sample counts its records keep rescorings of (Evaluation.first)
        self.spec, self.n_samples, self.steps, self.guidance, self.seed = spec, n_samples, steps, guidance, seed
        self.method = method
        self.text_encoder, self.n_reference, self.judge_steps, self.n_boot = text_encoder, n_reference, judge_steps, n_boot
        self.progress = progress
        self.encoder = make_encoder(text_encoder)
        self._references: dict[int, CaptionedImages] = {}
        self._features: dict[int, np.ndarray] = {}
        self._judge: Judge | None = None

    def with_sampler(self, method: str, steps: int) -> "Evaluator":
        """The same protocol sampled with ``method`` in ``steps`` steps, sharing this one's reference sets, their
        features and its alignment judge (trained here first if it was not yet)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if self.judge_steps:
            _ = self.judge
        other = copy.copy(self)
        other.method, other.steps = method, steps
        return other

    def reference(self, resolution: int) -> CaptionedImages:
        if resolution not in self._references:
            self._references.update(reference_sets(self.spec, [resolution], self.n_reference, self.split))
        return self._references[resolution]

    def features(self, resolution: int) -> np.ndarray:
        """The reference's pool3 features at ``resolution`` (read from the cache when stored)."""
        if resolution not in self._features:
            self._features[resolution] = stored_features(self.reference(resolution).images, progress=self.progress)
        return self._features[resolution]

    @property
    def judge(self) -> Judge:
        """Trained on first use; its ceiling is measured on the reference at 64 px, the size both judges read."""
        if self._judge is None:
            self._judge = alignment_judge(self.spec, self.reference(64), self.encoder, seed=self.seed,
                                          steps=self.judge_steps, progress=self.progress)
        return self._judge

    def floor(self, resolution: int) -> tuple[float, float]:
        """FID and KID of two halves of the reference: the noise floor at this sample count."""
        return metrics.half_split_floor(self.features(resolution), self.seed)

    def floor_at(self, resolution: int) -> tuple[float, float, int]:
        """FID and KID against the reference of ``n_samples`` other real images of the split (fewer if the split
        has fewer left): the floor at the sample count this protocol scores, and that count."""
        other = other_real_images(self.spec, resolution, self.n_samples, self.n_reference, self.split)
        if len(other) < 2:
            return float("nan"), float("nan"), len(other)
        features = stored_features(other, progress=self.progress)
        kid = metrics.kid_from_features(self.features(resolution), features, subset_size=min(100, len(other)),
                                        seed=self.seed)[0]
        return metrics.fid_from_features(self.features(resolution), features), kid, len(other)

    def describe(self) -> dict:
        """The protocol in words and numbers, for ``metrics.json`` and the notebooks' text."""
        return {"reference": f"{self.n_reference} {SPLITS[self.split]} (fixed seeded subset), at each model's "
                             f"resolution", "prompts": "the reference images' captions, in order",
                "generated": self.n_samples, "sampler": f"{self.method}, {self.steps} steps, guidance {self.guidance}",
                "sampling noise": f"batch j seeded {self.seed} + j (the same for every model)",
                "metrics": "FID, KID, precision/recall (k=3) on TF-Inception pool3; IS-style on EfficientNet-Lite0",
                "intervals": f"bootstrap over the generated set ({self.n_boot} resamples); across training seeds, "
                             f"Student's t with the bootstrap nested inside"}

    def key(self, run) -> str:
        """The name of the folder this evaluation of ``run`` is stored in: the protocol, the checkpoint and the
        evaluation code's fingerprint, hashed."""
        payload = {"checkpoint": str(run.checkpoint.name), "spec": self.spec, "n": self.n_samples, "steps": self.steps,
                   "guidance": self.guidance, "seed": self.seed, "text": self.text_encoder, "n_ref": self.n_reference,
                   "judge_steps": self.judge_steps, "n_boot": self.n_boot, "method": self.method, "split": self.split,
                   "code": code_fingerprint(EVALUATION_CODE)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def folder(self, run) -> Path:
        """Where this evaluation of ``run`` is stored (complete once it holds ``scores.json``)."""
        return run.run_dir / f"eval-{self.key(run)}"

    def is_stored(self, run) -> bool:
        """Whether this evaluation of ``run`` is stored: complete in the run cache, or kept in the records."""
        stored = self.folder(run)
        return (stored / "scores.json").exists() or records.has(stored, "record.json")

    def __call__(self, run) -> Evaluation:
        """The evaluation of ``run``'s checkpoint: read back when stored (in the run cache, else in the records:
        ``ldlib.runtime.records``), else sampled, scored and stored; recorded when records are being written."""
        stored = self.folder(run)
        done = Evaluation.load(stored) or self.recorded(stored)
        if done is not None:
            done.reference = self.features(int(done.samples.shape[-1]))
            self.record(stored, done)
            return done
        model, configs = load_model(records.weights(run))
        res = configs["model"].resolutions[-1]
        judge = self.judge if self.judge_steps else Judge("none")
        ev = evaluate_model(model, configs["diffusion"], self.encoder, self.reference(res), self.n_samples,
                            steps=self.steps, guidance=self.guidance, seed=self.seed, classifier=judge.classifier,
                            matcher=judge.matcher, reference_features=self.features(res), n_boot=self.n_boot,
                            progress=self.progress, method=self.method, label=run.run_dir.name,
                            reference_name=SPLITS[self.split], partial=stored.with_name(stored.name + ".partial"))
        ev.save(stored)
        shutil.rmtree(stored.with_name(stored.name + ".partial"), ignore_errors=True)  # the batches are in ``stored``
        ev.reference = self.features(res)
        self.record(stored, ev)
        return ev

    def record(self, stored: Path, ev: Evaluation) -> None:
        """Keep ``ev`` (stored in ``stored``) in the records, with its first :data:`GRID_SAMPLES` samples and
        the rescorings of its first ``self.prefixes`` samples, when records are being written and it has none."""
        if records.writing() and ev.features is not None and not records.has(stored, "record.json"):
            records.write_images(stored, "samples.png", ev.samples[:GRID_SAMPLES])
            records.write(stored, "record.json", ev.to_record(self.prefixes, self.n_boot, self.seed))

    @staticmethod
    def recorded(stored: Path) -> Evaluation | None:
        """The evaluation the records keep for the cache folder ``stored``, or None."""
        kept = records.read(stored, "record.json")
        samples = records.read_images(stored, "samples.png") if kept is not None else None
        return None if samples is None else Evaluation.from_record(kept, samples)
