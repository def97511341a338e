"""Evaluating a trained model the way Table 1 does: sample for a set of prompts, then FID / KID against a
reference set, an IS-style score, and text alignment, each with its uncertainty and its protocol.

    prompts (captions of the reference set) -> ldlib.sampler.sample (seeded, batched) -> images
    images vs reference -> ldlib.metrics (FID, KID, IS-style, bootstrap intervals)
    images vs prompts   -> ldlib.alignment (shapes: attribute accuracy) or ldlib.retrieval (captioned data:
                           top-1 retrieval accuracy of the prompt among other reference captions)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics
from .alignment import AttributeClassifier, attribute_accuracy
from .config import DiffusionConfig
from .data import CaptionedImages, to_float, to_uint8
from .pyramid import downsample
from .retrieval import ImageTextMatcher, retrieval_accuracy
from .sampler import sample
from .text import encode_unique


@dataclass
class Evaluation:
    scores: metrics.Scores
    alignment: float | None
    alignment_ci: tuple[float, float] | None
    samples: torch.Tensor  # uint8 (N, 3, R, R), the top resolution

    def as_dict(self) -> dict:
        s = self.scores
        return {"fid": s.fid, "fid_ci": s.fid_ci, "kid": s.kid, "kid_ci": s.kid_ci, "is_efficientnet": s.inception_score,
                "is_ci": s.is_ci, "alignment": self.alignment, "alignment_ci": self.alignment_ci,
                "protocol": s.protocol.as_dict()}


def generate(model, diffusion: DiffusionConfig, encoder, prompts: list[str], steps: int, guidance: float, seed: int,
             batch_size: int = 32, progress: bool = True) -> torch.Tensor:
    """Top-resolution samples (uint8) for every prompt; batch ``j`` uses seed ``seed + j``."""
    out = []
    for j, i in enumerate(tqdm(range(0, len(prompts), batch_size), disable=not progress, desc="sampling")):
        text = encoder.encode(prompts[i : i + batch_size])
        out.append(to_uint8(sample(model, diffusion, text, steps=steps, guidance=guidance, seed=seed + j).top))
    return torch.cat(out)


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
) -> Evaluation:
    """Sample ``n_samples`` images for the first ``n_samples`` reference captions (cycled) and score them.
    Alignment uses ``classifier`` on shapes (attributes known), else ``matcher`` (retrieval accuracy)."""
    idx = [i % len(reference) for i in range(n_samples)]
    prompts = [reference.captions[i] for i in idx]
    fake = generate(model, diffusion, encoder, prompts, steps, guidance, seed, progress=progress)
    real = reference.images
    if real.shape[-1] != fake.shape[-1]:
        real = to_uint8(downsample(to_float(real), fake.shape[-1]))
    protocol = metrics.Protocol(
        reference=f"{len(real)} reference images at {real.shape[-1]}px", n_reference=len(real), n_generated=n_samples,
        prompts="the reference captions, in order, cycled", seeds=f"batch j uses seed {seed} + j",
        guidance=guidance, sampler_steps=steps,
    )
    scores = metrics.evaluate(real, fake, protocol, n_boot=n_boot, seed=seed, real_features=reference_features)
    alignment = ci = None
    if classifier is not None and reference.attributes and "objects" in reference.attributes[0]:
        result = attribute_accuracy(classifier, fake, [reference.attributes[i] for i in idx])
        alignment, ci = result.accuracy, _binomial_ci(result.accuracy, n_samples)
    elif matcher is not None:
        text, index = encode_unique(encoder, reference.captions)
        alignment = retrieval_accuracy(matcher, fake, text, index[torch.tensor(idx)], seed=seed)
        ci = _binomial_ci(alignment, n_samples)
    return Evaluation(scores, alignment, ci, fake)


def scores_row(name: str, ev: Evaluation) -> dict:
    """A flat record for tables and metrics.json."""
    return {"model": name, **{k: v for k, v in ev.as_dict().items() if k != "protocol"}}



def corruption_sanity(reference: torch.Tensor, features: np.ndarray, levels: dict[str, list[float]], seed: int = 0,
                      progress: bool = True) -> dict[str, list[float]]:
    """FID between one random half of the reference (``metrics.split_halves``) and the other half degraded
    at each level. Level 0 would give the split-half floor (``metrics.half_split_floor``); a sound metric
    grows with every step of corruption."""
    a, b = metrics.split_halves(len(reference), seed)
    mu, sigma = metrics.gaussian_stats(features[a])
    return {kind: [metrics.frechet_distance_to(mu, sigma, metrics.extract(
                metrics.inception(), metrics.corrupt(reference[b], kind, v, seed=seed), progress=progress))
                for v in values]
            for kind, values in levels.items()}
