"""Trained models shared between notebooks, cached by what determines them.

A run's folder name carries a hash of its configs (less the step count and checkpoint cadence: a run folder
is one trajectory, and a larger budget resumes it), its data specification and the source code of every
module training depends on (``ldlib.training.train`` and ``ldlib.training.checkpoint`` with everything they
import: the network, loss, noise, schedules, stacking, device, data, ...; :data:`TRAINING_CODE`). The same
request from another notebook finds the finished run and reuses it; a change of config or of that code gives
a new hash, hence a fresh run. Interrupted runs resume from their last checkpoint; the checkpoint that ends each
requested budget is kept, and so is every point of a fixed grid passed on the way (:func:`milestone_grid`), so a
budget curve comes from one run whichever notebook asked for which budget first; a budget off the grid that a
run has passed is retraced in a branch folder from the newest milestone below it. The cache lives in
``$LDLIB_CACHE`` or the clone's ``.cache/ldlib/`` (git-ignored; checkpoints are never committed).

A finished milestone is also kept in the records (``ldlib.runtime.records``: its history and configs, no
weights), so that on a machine whose cache lacks it the run is a :class:`RecordedRun`: its losses and speed
are known, its evaluations read back from the records, and its weights trained again only if something
needs them (an evaluation not recorded, a stacked model starting from it, a probe). A milestone's record also
names the machine that trained it (``machine.json``, :func:`machine`): a speed is a property of a run and a machine.

A run keeps one arithmetic. Its key holds ``TrainConfig.precision`` as asked ("auto"), and "auto" resolves by the
machine (bf16 on CUDA and on CPUs with native bf16, else fp32), so a run resumed, or trained again from its records,
on another machine could silently change precision half-way; :func:`check_precision` refuses that and names the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from ..config import DiffusionConfig, TrainConfig, UNetConfig, to_dict
from ..data.datasets import from_spec
from ..data.text import encode_unique, make_encoder
from ..runtime import records
from ..runtime.cache import cache_root, code_fingerprint
from ..runtime.device import CPU_BF16_ENV, pick_device, resolve_precision
from ..training import TrainResult, stack_from, train
from ..training.checkpoint import checkpoint_at, latest_checkpoint, load_state, milestones, read_history

#: the milestone grid's first point, in steps (12,800 images at batch 32): :func:`milestone_grid`
GRID_STEPS = 400

#: TrainConfig fields left out of a run's hash: they say where a trajectory stops and how often it is saved, not
#: what it is
TRAJECTORY_FREE = ("steps", "checkpoint_every")

#: The modules a training run executes, from data to checkpoints; their sources and those of every ldlib module
#: they import (``ldlib.runtime.cache.module_closure``) make the run's code fingerprint.
TRAINING_CODE = ("ldlib.training.train", "ldlib.training.checkpoint", "ldlib.data.datasets", "ldlib.data.text")


def key_digest(key: dict) -> str:
    """12 hex digits naming what ``key`` (JSON-able; key order does not matter) describes in the cache."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def run_dir_for(name: str, model: UNetConfig, diffusion: DiffusionConfig, training: TrainConfig, data: dict,
                init_from: Path | None = None) -> Path:
    """The run's folder, ``<name>-<hash>``. The hash alone identifies a run: a folder with the same hash under
    another name (another notebook asked for the same model first) is the same run and is reused, in the cache or
    else in the records, whose folders mirror the cache's by name (so a run, its evaluations and its probe are
    read back whichever notebook asks). ``init_from`` is the checkpoint a stacked model starts from."""
    train = {k: v for k, v in to_dict(training).items() if k not in TRAJECTORY_FREE}
    key = {"model": to_dict(model), "diffusion": to_dict(diffusion), "train": train, "data": data,
           "code": code_fingerprint(TRAINING_CODE)}
    if init_from is not None:  # a stacked model differs from a fresh one with the same configs
        init_from = Path(init_from)
        key["init_from"] = f"{init_from.parent.name}/{init_from.name}"
    digest = key_digest(key)
    root = cache_root() / "runs"
    for folder in (root, records.records_root() / "runs"):
        named = sorted(folder.glob(f"*-{digest}")) if folder.exists() else []
        if named:
            return root / named[0].name
    return root / f"{name}-{digest}"


@dataclass
class RecordedRun(TrainResult):
    """A finished run that this machine's cache lacks but the records keep (trained on another machine): its
    history as recorded, ``checkpoint`` where its weights belong, and :meth:`materialize` to train them again,
    called only by what needs weights (``ldlib.runtime.records.weights``). The run is deterministic given its
    key, so the weights trained again are the run's own (up to the arithmetic of another machine)."""

    train_again: Callable[[], TrainResult] | None = field(default=None, repr=False, compare=False)

    def materialize(self) -> Path:
        if checkpoint_at(self.run_dir, self.step) is None:
            self.checkpoint = self.train_again().checkpoint
        return self.checkpoint


def trained_model(
    name: str,
    model: UNetConfig,
    diffusion: DiffusionConfig,
    training: TrainConfig,
    data: dict,
    progress: bool = True,
    init_from: TrainResult | None = None,
    use_records: bool = True,
) -> TrainResult:
    """Train the run described by the arguments to ``training.steps``, or return that checkpoint from the cache
    if the run reached it before, or (``use_records``) a :class:`RecordedRun` if the records keep it. ``data``
    is a ``ldlib.data.data_spec``; ``init_from``: a finished smaller run of the same preset to stack from
    (section 3.2; its checkpoint, so each of its budgets is another source)."""
    if init_from is not None and init_from.checkpoint is None:
        raise ValueError(f"init_from ({init_from.run_dir}) has no checkpoint to stack from; train it first")
    source = init_from.checkpoint if init_from is not None else None  # its name keys the run; its weights wait
    run_dir = run_dir_for(name, model, diffusion, training, data, source)
    done = checkpoint_at(run_dir, training.steps)
    if done is not None:
        record_milestone(done)
        return TrainResult.from_history(run_dir, training.steps, read_history(done), done, training.steps)
    if use_records:
        recorded = recorded_run(run_dir, training.steps)
        if recorded is not None:
            recorded.train_again = lambda: trained_model(name, model, diffusion, training, data, progress, init_from,
                                                         use_records=False)
            return recorded
    check_precision(run_dir, training)
    run_dir = _branch_if_past(run_dir, training.steps)
    source = records.weights(init_from) if init_from is not None else None  # a recorded source trains again now
    images = from_spec(data, model.resolutions[-1])
    text, index = encode_unique(make_encoder(training.text_encoder), images.captions)
    init = None
    if source is not None:
        def init(net):
            stack_from(net, source)
    latest = latest_checkpoint(run_dir)
    reached = int(load_state(latest)["step"]) if latest is not None else 0
    for stop in [g for g in milestone_grid(training.steps) if g > reached]:  # keep the grid's points on the way
        train(model, diffusion, replace(training, steps=stop), images, text, index, run_dir, progress=progress,
              init=init)
    result = train(model, diffusion, training, images, text, index, run_dir, progress=progress, init=init)
    if result.checkpoint is not None:
        record_milestone(result.checkpoint)
    return result


def record_milestone(checkpoint: Path) -> None:
    """Keep a finished milestone's ``history.json`` and ``config.json`` in the records (when they are being
    written): what a :class:`RecordedRun` is made of; and with a history recorded now, ``machine.json``: this
    machine trained it (caches do not move between machines; a run trained again here from another machine's
    record keeps that record, and its machine)."""
    copied = {name: records.copy(checkpoint / name) for name in ("history.json", "config.json")
              if (checkpoint / name).is_file()}
    if copied.get("history.json") is not None:
        records.write(checkpoint, "machine.json", machine())


def machine() -> dict:
    """This machine as far as a training speed depends on it: the CPU's model name, its logical CPUs and the
    threads torch uses, its native bf16 (the flags, not ``$LDLIB_CPU_BF16``), torch's version, and the GPU if any."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    return {"cpu": names[0] if names else platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}), "avx512": "avx512f" in flags,
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def machine_label(description: dict | None) -> str:
    """``"AMD EPYC, 2 threads, AVX-512 BF16"``: a :func:`machine` description in a few words ("machine unknown")."""
    if not description:
        return "machine unknown"
    if description.get("gpu"):
        return description["gpu"]
    isa = "AVX-512 BF16" if description.get("native_bf16") else "AVX-512" if description.get("avx512") else "AVX2"
    return f"{description.get('cpu', '?')}, {description.get('torch_threads', '?')} threads, {isa}"


def trained_on(run: TrainResult) -> dict | None:
    """The machine that trained ``run`` to its step: its milestone's record, else this machine when the checkpoint
    is in this machine's cache, else None (a milestone recorded before machines were)."""
    checkpoint = Path(run.run_dir) / f"step-{run.step:08d}"
    recorded = records.read(checkpoint, "machine.json")
    if recorded is not None:
        return recorded
    return machine() if checkpoint_at(run.run_dir, run.step) is not None else None


def check_precision(run_dir: Path, training: TrainConfig) -> None:
    """Refuse to train ``run_dir`` on in another precision than it was trained in so far (its newest checkpoint
    in this cache, its recorded milestones): "auto" in the run's key resolves by machine, and a trajectory half
    fp32, half bf16 (or a run trained again in another arithmetic than its records) would pass for the same run.
    """
    device = pick_device()
    here = resolve_precision(training.precision, device)
    histories = {f"checkpoint {p.name}": read_history(p) for p in [latest_checkpoint(run_dir)] if p is not None}
    for step in milestone_grid(training.steps) + [training.steps]:
        history = records.read(Path(run_dir) / f"step-{step:08d}", "history.json")
        if history is not None:
            histories[f"record of step-{step:08d}"] = history
    for where, history in histories.items():
        then = history.get("precision")
        if then is not None and then != here:
            fix = (f"set {CPU_BF16_ENV}={int(then == 'bf16')} so that precision 'auto' resolves to {then} here"
                   if device.type == "cpu" else f"train it on a machine where 'auto' resolves to {then}")
            raise RuntimeError(f"{Path(run_dir).name} was trained in {then} ({where}) but would train on in {here} on "
                               f"this machine (precision={training.precision!r}); a run keeps one arithmetic: {fix}, "
                               f"then run again.")


def recorded_run(run_dir: Path, steps: int) -> RecordedRun | None:
    """The run at ``steps`` as the records keep it (in the run's folder, or in the branch that retraced it to an
    off-grid budget), or None."""
    for folder in (run_dir, run_dir / "branches" / f"to-step-{steps:08d}"):
        checkpoint = folder / f"step-{steps:08d}"
        history = records.read(checkpoint, "history.json")
        if history is not None:
            return RecordedRun.from_history(folder, steps, history, checkpoint, steps)
    return None


def milestone_grid(steps: int) -> list[int]:
    """The steps below ``steps`` where every run keeps a milestone on its way: :data:`GRID_STEPS` times powers
    of two (12,800, 25,600, 51,200, ... images at batch 32), so that any notebook's budget on that grid is
    found whichever notebook trained the run further first."""
    grid, g = [], GRID_STEPS
    while g < steps:
        grid.append(g)
        g *= 2
    return grid


def _branch_if_past(run_dir: Path, steps: int) -> Path:
    """Where to train ``steps`` of a run: the run itself, or, when it is already past ``steps`` without a
    milestone there, a branch folder that starts from its newest milestone below ``steps`` (or from scratch)
    and retraces the same trajectory (resume is exact) up to ``steps``."""
    latest = latest_checkpoint(run_dir)
    if latest is None or int(load_state(latest)["step"]) < steps:
        return run_dir
    branch = run_dir / "branches" / f"to-step-{steps:08d}"
    if latest_checkpoint(branch) is None:
        below = [s for s in milestones(run_dir) if s < steps]
        branch.mkdir(parents=True, exist_ok=True)
        if below:
            start = milestones(run_dir)[max(below)]
            shutil.copytree(start, branch / start.name)
            (branch / "latest").write_text(start.name + "\n")
    return branch
