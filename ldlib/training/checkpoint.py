"""Checkpoints: one folder per step, written atomically, loaded strictly.

    <run>/step-00001000/
        model.safetensors   network weights
        ema.safetensors     EMA weights
        state.pt            optimizer state, RNG states, step (tensors and plain values only;
                            loaded with ``torch.load(weights_only=True)``, never arbitrary pickles)
        config.json         model / diffusion / training configs
        MILESTONE           present when the checkpoint ends a requested budget: never pruned
    <run>/latest            name of the newest complete checkpoint

A run folder is one training trajectory: asking for more steps resumes it, and the checkpoint that ended each
requested budget stays (a *milestone*), so a budget curve is read from one run's milestones
(:func:`checkpoint_at`) instead of training a run per budget. Other checkpoints are pruned to the newest two.

A checkpoint folder appears only once complete (written under a temporary name, then renamed), so a kill
during saving leaves the previous checkpoint intact. Loading checks the configs, the weights' names and
shapes, and the files' integrity, and fails with a :class:`CheckpointError` that says what to do rather than
loading part. Models come out of checkpoints here too: :func:`load_model` for sampling, :func:`stack_from`
for model stacking (section 3.2).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import from_dict, to_dict
from ..network import LayeredUNet, build_model
from ..runtime.device import pick_device, place, resolve_precision
from ..runtime.files import atomic_write_text
from ..stacking import StackingError, StackReport, stack_weights


#: the marker file of a milestone checkpoint (one that ended a requested budget)
MILESTONE = "MILESTONE"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, or made for another configuration."""


def _state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def save_checkpoint(run_dir: Path, step: int, model, ema, optimizer, rng: dict, configs: dict, keep: int = 2,
                    history: dict | None = None, milestone: bool = False) -> Path:
    """Write checkpoint ``step`` under ``run_dir`` and point ``latest`` at it; keep the newest ``keep`` and every
    milestone (``milestone=True`` marks this one). ``history`` (losses so far, throughput) is stored beside it as
    ``history.json``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / f"step-{step:08d}"
    tmp = run_dir / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_state_dict(model), str(tmp / "model.safetensors"))
    save_file(_state_dict(ema), str(tmp / "ema.safetensors"))
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "rng": rng}, tmp / "state.pt")
    (tmp / "config.json").write_text(json.dumps({k: to_dict(v) for k, v in configs.items()}, indent=2))
    if history is not None:
        (tmp / "history.json").write_text(json.dumps(history))
    if milestone:
        (tmp / MILESTONE).write_text("a requested budget ended here; pruning keeps this checkpoint\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(run_dir / "latest", final.name + "\n")
    for old in sorted(run_dir.glob("step-*"))[:-keep] if keep else []:
        if not (old / MILESTONE).exists():
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).glob("step-*") if p.is_dir())


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    run_dir = Path(run_dir)
    pointer = run_dir / "latest"
    if pointer.exists():
        path = run_dir / pointer.read_text().strip()
        if path.is_dir():
            return path
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def milestones(run_dir: Path) -> dict[int, Path]:
    """The run's milestone checkpoints by step: the ends of the budgets asked of it so far."""
    return {int(p.name[5:]): p for p in list_checkpoints(run_dir) if (p / MILESTONE).exists()}


def checkpoint_at(run_dir: Path, step: int) -> Path | None:
    """The run's complete checkpoint at exactly ``step`` (a milestone, or one not pruned yet), or None."""
    path = Path(run_dir) / f"step-{step:08d}"
    return path if (path / "state.pt").exists() and (path / "config.json").exists() else None


def read_history(ckpt: Path) -> dict:
    """The training history stored with a checkpoint (empty if none)."""
    try:
        return json.loads((Path(ckpt) / "history.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_configs(ckpt: Path) -> dict:
    ckpt = Path(ckpt)
    try:
        raw = json.loads((ckpt / "config.json").read_text())
        return {k: from_dict(v) for k, v in raw.items()}
    except FileNotFoundError:
        raise CheckpointError(f"{ckpt} is not a checkpoint (no config.json); pass a step-XXXXXXXX folder or a run folder") from None
    except (json.JSONDecodeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{ckpt}/config.json is unreadable ({exc}); the checkpoint is corrupt") from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or a :class:`CheckpointError` that says what to do."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is corrupt or unreadable ({exc}); delete that checkpoint folder and "
                              f"resume from an earlier one") from None


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load a safetensors file into ``module``, strictly (every tensor present with the right shape)."""
    state = read_weights(path)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path} does not fit this model: {len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} "
            f"unexpected (e.g. {unexpected[:3]}), {len(wrong)} of another shape (e.g. {wrong[:3]}). Was it "
            f"trained with another preset or number of resolutions?"
        )
    module.load_state_dict(state, strict=True)


def load_state(ckpt: Path) -> dict:
    try:
        return torch.load(Path(ckpt) / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"{ckpt}/state.pt is corrupt or not a trusted ldlib state file ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); delete that checkpoint folder and resume from an earlier one") from None


def check_configs(ckpt: Path, **expected) -> dict:
    """The checkpoint's configs, after checking those in ``expected`` are equal to them."""
    configs = read_configs(ckpt)
    for name, cfg in expected.items():
        saved = configs.get(name)
        if saved is not None and saved != cfg:
            diff = {k: (getattr(saved, k), getattr(cfg, k)) for k in to_dict(cfg) if k != "type" and getattr(saved, k) != getattr(cfg, k)}
            raise CheckpointError(f"{ckpt} was made with another {name} config; differing fields (saved, requested): {diff}. "
                                  f"Use a new run folder, or the same settings to resume.")
    return configs


def resolve_checkpoint(path: Path | str) -> Path:
    """``path`` itself when it is a ``step-XXXXXXXX`` folder, else the newest checkpoint of the run folder."""
    path = Path(path)
    if (path / "config.json").exists():
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise CheckpointError(f"no checkpoint in {path}; train one with `ldlib train`")
    return found


def load_model(ckpt: Path | str, use_ema: bool = True, device: str | None = None) -> tuple[LayeredUNet, dict]:
    """A trained network (EMA weights by default) in the layout its device and precision run fastest in
    (``ldlib.runtime.device``), in eval mode, and the configs it was trained with."""
    ckpt = resolve_checkpoint(ckpt)
    configs = read_configs(ckpt)
    model = build_model(configs["model"])
    load_weights(model, ckpt / ("ema.safetensors" if use_ema else "model.safetensors"))
    dev = pick_device(device)
    return place(model, dev, resolve_precision("auto", dev)).eval(), configs


def stack_from(model: LayeredUNet, source: Path | str, use_ema: bool = True) -> StackReport:
    """Model stacking (section 3.2) from a checkpoint: copy the smaller trained model in ``source`` (a run or
    checkpoint folder) into ``model`` (``ldlib.stacking.stack_weights``)."""
    ckpt = resolve_checkpoint(source)
    small = read_configs(ckpt)["model"]
    state = read_weights(ckpt / ("ema.safetensors" if use_ema else "model.safetensors"))
    try:
        return stack_weights(model, small, state, ckpt)
    except StackingError as exc:
        raise CheckpointError(f"{ckpt}: {exc}") from None
