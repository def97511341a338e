"""The records: the committed part of the run cache, so that a result outlives the machine that computed it.

The run cache (:mod:`ldlib.runtime.cache`) holds checkpoints (tens of MB each) and evaluations with their
samples and Inception features; none of it goes to git, so a new machine starts with an empty cache and
would train and sample everything again. A *record* keeps, in tens of kB, what a finished result measured: a
milestone's ``history.json`` and ``config.json`` (its losses and speed, no weights), and an evaluation's
scores with what paired comparisons and smaller sample counts need (``ldlib.evaluation.evaluator``'s
``Evaluation.to_record``). Records mirror the cache's layout under ``runs/`` and carry the same keys (a run's
folder hash covers its configs, data and training code; an evaluation's key its protocol and evaluation code),
so a record answers exactly the question its cache entry answered, and a change of code misses it as it
misses the cache.

Reading: ``$LDLIB_RECORDS``, else the clone's ``results/records/`` (committed). Writing is opt-in: only when
``$LDLIB_RECORDS`` is set, so a test or a smoke run leaves the committed records alone; a long campaign sets it
to the clone's ``results/records`` and commits the new records as they complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .cache import PACKAGE_DIR, cache_root
from .files import atomic_write_text, json_default

RECORDS_ENV = "LDLIB_RECORDS"


def records_root() -> Path:
    """Where records are read from: ``$LDLIB_RECORDS``, else the clone's committed ``results/records/``."""
    return Path(os.environ.get(RECORDS_ENV) or PACKAGE_DIR.parent / "results" / "records")


def writing() -> bool:
    """Records are written only where ``$LDLIB_RECORDS`` names their folder (see the module docstring)."""
    return bool(os.environ.get(RECORDS_ENV))


def record_path(cache_path: Path) -> Path | None:
    """The record mirroring ``cache_path`` (a folder under the run cache's ``runs/``), or None when the path
    lies outside the run cache (a run trained into a folder of the caller's own has no record)."""
    try:
        relative = Path(cache_path).resolve().relative_to((cache_root() / "runs").resolve())
    except ValueError:
        return None
    return records_root() / "runs" / relative


def read(cache_path: Path, name: str) -> dict | None:
    """The JSON record ``name`` mirroring ``cache_path``, or None when there is none (or it is unreadable:
    a record is a shortcut, never the only copy of something that cannot be recomputed)."""
    path = record_path(cache_path)
    if path is None or not (path / name).is_file():
        return None
    try:
        return json.loads((path / name).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def has(cache_path: Path, name: str) -> bool:
    """Whether the record ``name`` mirroring ``cache_path`` exists (without reading it)."""
    path = record_path(cache_path)
    return path is not None and (path / name).is_file()


def _new(cache_path: Path, name: str) -> Path | None:
    """Where to write the record ``name`` mirroring ``cache_path`` (its folder made), or None when records are not
    being written or it is there already (a record, once written, is never replaced: the same key always has
    the same answer)."""
    path = record_path(cache_path)
    if not writing() or path is None or (path / name).exists():
        return None
    path.mkdir(parents=True, exist_ok=True)
    return path / name


def write(cache_path: Path, name: str, record: dict) -> Path | None:
    """Write the JSON record ``name`` mirroring ``cache_path`` under the rule of :func:`_new`."""
    target = _new(cache_path, name)
    if target is not None:
        atomic_write_text(target, json.dumps(record, default=json_default, sort_keys=True))
    return target


def copy(cache_file: Path) -> Path | None:
    """Keep the run cache's file ``cache_file`` as it is, as the record of its folder of the same name, under
    the rule of :func:`_new` (a milestone's ``history.json``, say: copied, not parsed)."""
    target = _new(cache_file.parent, cache_file.name)
    if target is not None:
        atomic_write_text(target, cache_file.read_text())
    return target


def write_images(cache_path: Path, name: str, images) -> Path | None:
    """Write uint8 images ``(N, 3, R, R)`` as one lossless PNG strip (N side by side) mirroring ``cache_path``,
    under the rule of :func:`_new`."""
    from PIL import Image

    target = _new(cache_path, name)
    if target is None:
        return None
    n, _, r, _ = images.shape
    strip = images.permute(2, 0, 3, 1).reshape(r, n * r, 3).contiguous().numpy()
    tmp = target.with_name(name + ".tmp")
    Image.fromarray(strip).save(tmp, format="PNG")
    os.replace(tmp, target)
    return target


def read_images(cache_path: Path, name: str):
    """The images :func:`write_images` kept, uint8 ``(N, 3, R, R)``, or None."""
    import numpy as np
    import torch
    from PIL import Image

    path = record_path(cache_path)
    if path is None or not (path / name).is_file():
        return None
    strip = torch.from_numpy(np.asarray(Image.open(path / name).convert("RGB")).copy())
    r = strip.shape[0]
    return strip.reshape(r, -1, r, 3).permute(1, 3, 0, 2).contiguous()


def weights(run) -> Path:
    """The checkpoint holding the weights of ``run`` (a ``ldlib.training.TrainResult``): its own, or, for a run
    known only from the records (``ldlib.reproduction.run_cache.RecordedRun``), the one it trains again first:
    a record has no weights, so a run is retrained only when something needs them."""
    materialize = getattr(run, "materialize", None)
    if materialize is not None:
        return materialize()
    if run.checkpoint is None:
        raise ValueError(f"{run.run_dir} has no checkpoint at step {run.step}")
    return run.checkpoint
