"""Trained models shared between notebooks, cached by what determines them.

A run's folder name carries a hash of its configs, its data specification and the source code of every
module that shapes training (network, loss, noise, schedules, ...). The same request from another notebook
finds the finished run and reuses it; a change of config or code gives a new hash, hence a fresh run.
Interrupted runs resume from their last checkpoint. The cache lives in ``$LDLIB_CACHE`` or the clone's
``.cache/ldlib/`` (git-ignored; checkpoints are never committed).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .checkpoint import latest_checkpoint, load_state, read_history
from .config import DiffusionConfig, TrainConfig, UNetConfig, to_dict
from .data import CaptionedImages, shapes_dataset
from .text import encode_unique, make_encoder
from .train import TrainResult, train

PACKAGE_DIR = Path(__file__).resolve().parent
#: Modules whose source decides what a training run produces.
TRAINING_CODE = ("config", "crop", "data", "forward", "loss", "network", "noise", "pyramid", "schedules", "text", "train")


def cache_root() -> Path:
    return Path(os.environ.get("LDLIB_CACHE") or PACKAGE_DIR.parent / ".cache" / "ldlib")


def code_fingerprint() -> str:
    h = hashlib.sha256()
    for name in TRAINING_CODE:
        h.update((PACKAGE_DIR / f"{name}.py").read_bytes())
    return h.hexdigest()


def make_data(spec: dict, resolution: int) -> CaptionedImages:
    """The data set a run trains on, from its specification: ``{"kind": "shapes", "n": ..., "seed": ...}``
    or any ``ldlib.datasets`` source, e.g. ``{"kind": "emoji3d", "split": "train"}``."""
    kind = spec.get("kind")
    if kind == "shapes":
        return shapes_dataset(int(spec["n"]), resolution, seed=int(spec.get("seed", 0)))
    from .datasets import DATASETS, load_dataset

    if kind in DATASETS:
        rest = {k: v for k, v in spec.items() if k not in ("kind", "split")}
        return load_dataset(kind, spec.get("split", "train"), resolution, **rest)
    raise ValueError(f"unknown data specification {spec!r}; kinds: {', '.join(DATASETS)}")


def budget_config(budget_images: int, batch_size: int, lr: float, seed: int = 0, text_encoder: str = "minilm",
                  **overrides) -> TrainConfig:
    """The training config of a run that sees ``budget_images`` images: every notebook builds its configs here,
    so the same request from two notebooks hashes to the same run."""
    steps = max(1, budget_images // batch_size)
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, text_encoder=text_encoder,
                       checkpoint_every=max(50, steps // 4), warmup_steps=min(100, steps // 10 + 1), **overrides)


def run_dir_for(name: str, model: UNetConfig, diffusion: DiffusionConfig, training: TrainConfig, data: dict,
                init_from: Path | None = None) -> Path:
    """The run's folder, ``<name>-<hash>``. The hash alone identifies a run: a folder with the same hash under
    another name (another notebook asked for the same model first) is the same run and is reused."""
    key = {"model": to_dict(model), "diffusion": to_dict(diffusion), "train": to_dict(training), "data": data,
           "code": code_fingerprint()}
    if init_from is not None:  # a stacked model differs from a fresh one with the same configs
        key["init_from"] = Path(init_from).name
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    root = cache_root() / "runs"
    existing = sorted(root.glob(f"*-{digest}")) if root.exists() else []
    return existing[0] if existing else root / f"{name}-{digest}"


def trained_model(
    name: str,
    model: UNetConfig,
    diffusion: DiffusionConfig,
    training: TrainConfig,
    data: dict,
    progress: bool = True,
    init_from: TrainResult | None = None,
) -> TrainResult:
    """Train the run described by the arguments, or return it from the cache if it is already done.
    ``init_from``: a finished smaller run of the same preset to stack from (section 3.2)."""
    source = init_from.run_dir if init_from is not None else None
    run_dir = run_dir_for(name, model, diffusion, training, data, source)
    done = latest_checkpoint(run_dir)
    if done is not None and int(load_state(done)["step"]) >= training.steps:
        return TrainResult.from_history(run_dir, training.steps, read_history(done), done, training.steps)
    images = make_data(data, model.resolutions[-1])
    text, index = encode_unique(make_encoder(training.text_encoder), images.captions)
    init = None
    if source is not None:
        from .stacking import stack_from

        def init(net):
            stack_from(net, source)
    return train(model, diffusion, training, images, text, index, run_dir, progress=progress, init=init)
