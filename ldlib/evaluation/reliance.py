"""The noise-free-part probe (notebooks 02 and 05): whether a trained layered model reads what the shared sinc noise
of eq. (3) leaves noise-free in its lower layers' inputs (``ldlib.reproduction.schedule_shifting.noise_free_part``).

A probe needs the model's weights, and the records keep no weights (``ldlib.runtime.records``): a run known only
from its records is trained again first, up to an hour per run on a 2-core CPU. So a probe's result is stored
beside the run's evaluations, ``<run>/probe-<key>/reliance.json`` (the key: the checkpoint's step, what the probe
batch is, the probed t, the noise seed and this module's code), and kept in the records when they are written: asked
again, on any machine, it is read back, and a run is trained again only for a probe never made.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch

from ..forward import diffuse
from ..noise import noise_pyramid
from ..runtime import records
from ..runtime.cache import code_fingerprint
from ..runtime.files import atomic_write_text

#: The t at which the probe compares the top layer's error (mid to high noise, where sampling commits).
PROBE_TS = (0.2, 0.4, 0.6, 0.8, 0.9)
#: What a stored probe result was computed by (its key holds this code's fingerprint).
PROBE_CODE = (__name__,)
RESULT = "reliance.json"


class Probe(NamedTuple):
    """The inputs a model is probed with: ``x0`` (floats in [-1, 1]), their encoded captions ``text``, and ``about``
    (:func:`probe_about`: what they are, the key of a stored result; None: the result is not stored)."""

    x0: torch.Tensor
    text: object
    about: dict | None = None


def probe_about(spec: dict, resolution: int, text_encoder: str, n: int = 128, seed: int = 0) -> dict:
    """What :func:`probe_batch` draws for these arguments, without drawing it (the plan asks whether a probe is
    stored without loading data)."""
    return {"spec": spec, "resolution": resolution, "text_encoder": text_encoder, "n": n, "seed": seed}


def probe_batch(spec: dict, resolution: int, text_encoder: str, n: int = 128, seed: int = 0) -> Probe:
    """``n`` training images at ``resolution`` and their encoded captions, drawn with ``seed``: the inputs
    :func:`noise_reliance` probes a model with (the distribution it was trained on)."""
    from ..data.datasets import from_spec
    from ..data.images import to_float
    from ..data.text import make_encoder

    data = from_spec(spec, resolution)
    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed))[:n]
    text = make_encoder(text_encoder).encode([data.captions[i] for i in idx.tolist()])
    return Probe(to_float(data.images[idx]).float(), text, probe_about(spec, resolution, text_encoder, n, seed))


def probe_folder(run, about: dict, ts: Sequence[float] = PROBE_TS, seed: int = 0) -> Path:
    """Where the probe of ``run`` (a ``ldlib.training.TrainResult``) with these inputs is stored."""
    payload = {"step": int(run.step), "about": about, "ts": [float(t) for t in ts], "seed": seed,
               "code": code_fingerprint(PROBE_CODE)}
    return Path(run.run_dir) / f"probe-{hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]}"


def stored_probe(folder: Path) -> np.ndarray | None:
    """The probe stored in ``folder``: in the run cache, else in the records; None when neither holds it."""
    try:
        found = json.loads((folder / RESULT).read_text())
    except (OSError, json.JSONDecodeError):
        found = records.read(folder, RESULT)
    return None if found is None else np.asarray(found["mse"], dtype=float)


def is_probed(run, about: dict, ts: Sequence[float] = PROBE_TS, seed: int = 0) -> bool:
    """Whether the probe of ``run`` is stored (so probing it needs no weights)."""
    return stored_probe(probe_folder(run, about, ts, seed)) is not None


def noise_reliance(checkpoint, x0: torch.Tensor, text, about: dict | None = None, ts: Sequence[float] = PROBE_TS,
                   seed: int = 0) -> np.ndarray:
    """How much a trained layered model relies on the lower layers' noise being S(eps0, i) of the top layer's:
    per t, the top layer's x-prediction MSE with the inputs of eq. (3) as trained (column 0), and with the lower
    layers' noise drawn from another eps0 (column 1: same images, t, alpha and sigma; only the noise-free part is
    destroyed; every layer's input keeps its distribution, only the layers' relation changes). A model that reads
    the noise-free part fails without it; one that does not should lose little. The network runs in float32 on its
    device. ``checkpoint``: a checkpoint folder, or a run (``TrainResult``); a run's probe with ``about`` is read
    back when stored (module docstring), else its weights are loaded (trained again first if only its record is
    here: ``ldlib.runtime.records.weights``) and the result stored."""
    folder = probe_folder(checkpoint, about, ts, seed) if about is not None and hasattr(checkpoint, "run_dir") else None
    found = None if folder is None else stored_probe(folder)
    if found is not None:
        _store(folder, found, about, ts, seed)  # a result read from the cache is recorded once records are written
        return found
    out = _probe(records.weights(checkpoint) if hasattr(checkpoint, "run_dir") else checkpoint, x0, text, ts, seed)
    if folder is not None:
        _store(folder, out, about, ts, seed)
    return out


def _store(folder: Path, mse: np.ndarray, about: dict, ts: Sequence[float], seed: int) -> None:
    result = {"mse": mse.tolist(), "columns": ["as trained", "lower noise independent"],
              "ts": [float(t) for t in ts], "seed": seed, "about": about}
    if not (folder / RESULT).exists() and folder.parent.is_dir():  # a run with no folder here is read from records
        folder.mkdir(exist_ok=True)
        atomic_write_text(folder / RESULT, json.dumps(result, sort_keys=True))
    if not records.has(folder, RESULT):
        records.write(folder, RESULT, result)


@torch.no_grad()
def _probe(checkpoint: Path, x0: torch.Tensor, text, ts: Sequence[float], seed: int) -> np.ndarray:
    from ..training.checkpoint import load_model

    model, configs = load_model(checkpoint)
    model, dev = model.float(), next(model.parameters()).device
    schedule = configs["diffusion"].schedule
    g = torch.Generator().manual_seed(seed)
    text, keep = text.to(dev, torch.float32), torch.ones(len(x0), dtype=torch.bool, device=dev)
    out = np.zeros((len(ts), 2))
    for k, t in enumerate(ts):
        eps0, other = torch.randn(x0.shape, generator=g), torch.randn(x0.shape, generator=g)
        z, targets, _ = diffuse(x0, eps0, t, schedule, "sinc")
        alien = noise_pyramid(other, schedule.resolutions, "sinc")
        levels = schedule.alpha_sigma(torch.tensor(float(t)))
        swapped = [a * d + s * e for (a, s), d, e in zip(levels[:-1], targets, alien)] + [z[-1]]
        tt = torch.full((len(x0),), float(t), device=dev)
        for j, inputs in enumerate((z, swapped)):
            pred = model([v.to(dev) for v in inputs], tt, text.tokens, text.mask, text.pooled, keep)
            out[k, j] = float(((pred[-1].float().cpu() - targets[-1]) ** 2).mean())
    return out
