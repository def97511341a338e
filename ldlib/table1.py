"""Table 1 at a profile's scale (section 4): single-resolution U-Nets at each target resolution and layered
models with the same base, trained on the same data with the same budget in images seen, then evaluated
with one protocol (FID, KID, IS-style, text alignment) and compared on FLOPs.

The rows follow the paper's: ``single<r0>`` (the base model, K = 1), ``single<r1>``, ``layered<r1>``,
``single<r2>``, ``layered<r2>`` for a preset's resolutions r0 < r1 < r2.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import DiffusionConfig, TrainConfig, UNetConfig, get_preset, model_config
from .data import CaptionedImages
from .evaluation import Evaluation, evaluate_model
from .flops import count_flops
from .runs import trained_model
from .text import make_encoder
from .train import TrainResult, load_model

#: (kind, levels) of each row, in the paper's order.
ROWS = (("single", 1), ("single", 2), ("layered", 2), ("single", 3), ("layered", 3))


@dataclass
class Row:
    name: str
    model: UNetConfig
    flops: int
    run: TrainResult | None = None
    evaluation: Evaluation | None = None


def rows(preset: str) -> list[Row]:
    """The five models of Table 1 for ``preset``, with their forward FLOPs per image."""
    res = get_preset(preset).resolutions
    out = []
    for kind, levels in ROWS:
        cfg = model_config(preset, levels, single=kind == "single" and levels > 1)
        out.append(Row(f"{kind}{res[levels - 1]}", cfg, count_flops(cfg)))
    return out


def train_rows(preset: str, data: dict, budget_images: int, batch_size: int, lr: float, seed: int = 0,
               text_encoder: str = "minilm", progress: bool = True) -> list[Row]:
    """Train (or fetch from the run cache) every row with the same number of images seen."""
    steps = max(1, budget_images // batch_size)
    table = rows(preset)
    for row in table:
        diffusion = DiffusionConfig.paper(row.model.resolutions)
        training = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, text_encoder=text_encoder,
                               checkpoint_every=max(50, steps // 4), warmup_steps=min(100, steps // 10 + 1))
        row.run = trained_model(f"table1-{row.name}", row.model, diffusion, training, data, progress=progress)
    return table


def evaluate_rows(table: list[Row], reference: CaptionedImages, n_samples: int, steps: int, guidance: float,
                  seed: int = 0, text_encoder: str = "minilm", classifier=None, progress: bool = True) -> list[Row]:
    """Score every trained row against ``reference`` (resized to each row's target) with one protocol."""
    encoder = make_encoder(text_encoder)
    for row in table:
        model, configs = load_model(row.run.checkpoint)
        row.evaluation = evaluate_model(model, configs["diffusion"], encoder, reference, n_samples, steps=steps,
                                        guidance=guidance, seed=seed, classifier=classifier, progress=progress)
    return table
