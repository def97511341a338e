"""Training a layered model on eq. (3): AdamW, EMA, gradient clipping, checkpoints, resume.

One training step, in data-flow order:

    idx -> x0 (top resolution, in memory) and cached caption states
    t ~ U[0, 1], eps0 ~ N(0, I) at the top resolution, caption dropped with cond_drop_prob
    [strategic cropping: one nested crop plan for the batch, section 3.1]
    ldlib.loss.training_inputs: z_i = alpha_{t,i} D(x0, i) + sigma_{t,i} S(eps0, i)
    LayeredUNet(z, t, text) -> x_hat_i;  ldlib.loss.layered_loss -> backward -> clip -> AdamW -> EMA

:func:`train` reads in that order: build the model and optimizer (:func:`_build`), resume from the newest
checkpoint (:func:`_resume`), then per step draw the batch (:func:`draw_batch`), compute the gradient
(:func:`_gradient`), update the weights (:func:`_update`) and keep the books (:class:`_Books`: losses,
throughput, progress bar, checkpoints).

Randomness: the batch's draws (images, t, eps0, caption drops, crops) come from the run's own generator,
seeded with ``seed + 1``; the lower levels' noise of ``noise_kind="independent"`` comes from torch's global
generator, seeded with ``seed`` (it also initialised the weights). A checkpoint saves both generators' states,
so a run resumed from a checkpoint continues exactly as if it had never stopped (on the CPU, bit for bit).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..config import DiffusionConfig, TrainConfig, UNetConfig
from ..crop import CropBox, nested_crop_boxes
from ..data.images import CaptionedImages, to_float, to_uint8
from ..data.text import TextBatch
from ..loss import layered_loss, training_inputs
from ..network import LayeredUNet, build_model, set_activation_checkpointing
from ..pyramid import downsample
from ..runtime import distributed, progress
from ..runtime.device import Execution, autocast, memory_format, place, resolve_precision
from .checkpoint import (CheckpointError, check_configs, checkpoint_at, latest_checkpoint, load_state, load_weights,
                         milestones, read_history, save_checkpoint)

#: below this CPU share (``TrainResult.cpu_share``) a run's throughput was measured on a machine doing other work;
#: measured: 0.99 alone, 0.85 beside one busy process on 2 cores (throughput -26%)
SHARED_CPU = 0.9


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


@dataclass
class TrainResult:
    """``losses``/``level_losses`` cover the whole run so far (earlier segments come from the checkpoint's
    history); ``images_per_s`` is this invocation's training throughput."""

    run_dir: Path
    step: int
    losses: list[float] = field(default_factory=list)
    level_losses: list[list[float]] = field(default_factory=list)
    images_per_s: float = float("nan")
    #: this invocation's process CPU seconds over (wall seconds x torch threads) while training on a CPU: near 1 on
    #: an idle machine, lower when other work took cores (its images/s then understates the code); None on a GPU
    cpu_share: float | None = None
    checkpoint: Path | None = None
    resumed_from: int = 0

    @classmethod
    def from_history(cls, run_dir: Path, step: int, history: dict, checkpoint: Path | None = None,
                     resumed_from: int = 0) -> "TrainResult":
        """A result whose first ``step`` steps come from a checkpoint's ``history.json`` (``{}``: a fresh run)."""
        return cls(run_dir, step, list(history.get("losses", []))[:step], list(history.get("level_losses", []))[:step],
                   history.get("images_per_s", float("nan")), history.get("cpu_share"), checkpoint, resumed_from)

    def cpu_note(self) -> str:
        """``"CPU share 0.99"``, with a warning when the machine was shared; empty when not recorded (GPU runs)."""
        if self.cpu_share is None:
            return ""
        shared = ": the machine was shared, images/s understates the code" if self.cpu_share < SHARED_CPU else ""
        return f"CPU share {self.cpu_share:.2f}{shared}"

    def speed(self) -> str:
        """``"41.2 images/s (CPU share 0.99)"``."""
        note = self.cpu_note()
        return f"{self.images_per_s:.1f} images/s" + (f" ({note})" if note else "")


def prepare_images(data: CaptionedImages, resolution: int) -> CaptionedImages:
    """The data at the model's top resolution (downsampled once, in memory, if it is larger)."""
    if data.resolution == resolution:
        return data
    if data.resolution < resolution:
        raise ValueError(f"the data is {data.resolution}px but the model's top resolution is {resolution}px")
    return CaptionedImages(to_uint8(downsample(to_float(data.images), resolution)), data.captions, data.attributes)


def step_loss(net, x0: torch.Tensor, eps0: torch.Tensor, t: torch.Tensor, text: TextBatch, keep: torch.Tensor | None,
              crops, diff_cfg: DiffusionConfig, device: torch.device, precision: str,
              layout: torch.memory_format = torch.contiguous_format) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Eq. (3) for one batch: the noisy pyramid z_i, the network's x_hat_i, and the weighted loss (with the
    per-resolution terms). Shared by :func:`train` and the speed measurements, so they time the same work."""
    z, targets = training_inputs(x0, eps0, t, diff_cfg, crops)
    z = [v.contiguous(memory_format=layout) for v in z]
    with autocast(device, precision):
        pred = net(z, t, text.tokens, text.mask, text.pooled, keep, crops)
    return layered_loss(pred, targets, t, diff_cfg)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    e = [p for p in ema.parameters()]
    m = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(e, m, 1.0 - decay)


# ------------------------------------------------------------------------------------------- the loop


@dataclass
class Batch:
    """One step's draws for the global batch: image indices, caption kept (not dropped), t, top-resolution
    noise eps0, and the strategic-crop plan (None without cropping)."""

    idx: torch.Tensor
    keep: torch.Tensor
    t: torch.Tensor
    eps0: torch.Tensor
    crops: list[CropBox | None] | None


def draw_batch(gen: torch.Generator, n_images: int, resolution: int, model_cfg: UNetConfig,
               train_cfg: TrainConfig) -> Batch:
    """The global batch's random draws, from the run's generator alone, in a fixed order (resume depends on it)."""
    b = train_cfg.batch_size
    idx = torch.randint(n_images, (b,), generator=gen)
    keep = torch.rand(b, generator=gen) >= train_cfg.cond_drop_prob
    t = torch.rand(b, generator=gen)
    eps0 = torch.randn((b, 3, resolution, resolution), generator=gen)
    crops = nested_crop_boxes(model_cfg.resolutions, train_cfg.crop_size, gen) if train_cfg.crop_size else None
    return Batch(idx, keep, t, eps0, crops)


@dataclass
class _Parts:
    """What a run trains and what a checkpoint restores. ``net`` is what the step calls (DDP and/or compiled),
    ``ddp`` the DDP wrapper (or the model) for ``no_sync``."""

    model: LayeredUNet
    ema: LayeredUNet
    net: torch.nn.Module
    ddp: torch.nn.Module
    opt: torch.optim.Optimizer
    gen: torch.Generator


def _build(model_cfg: UNetConfig, train_cfg: TrainConfig, dev: torch.device, precision: str, execution: Execution,
           ctx: distributed.Context, init: Callable[[LayeredUNet], None] | None) -> _Parts:
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg)
    if init is not None:
        init(model)
    set_activation_checkpointing(model, execution.checkpoint_activations)
    place(model, dev, precision, execution)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    net = ddp = distributed.wrap(model, ctx, dev)
    if execution.compile:
        net = torch.compile(net, dynamic=False)  # static shapes: one graph per model, no symbolic-shape recompiles
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, betas=train_cfg.betas,
                            weight_decay=train_cfg.weight_decay)
    return _Parts(model, ema, net, ddp, opt, torch.Generator().manual_seed(train_cfg.seed + 1))


def _resume(run_dir: Path, resume: bool, parts: _Parts, model_cfg: UNetConfig, diff_cfg: DiffusionConfig,
            steps: int) -> tuple[int, Path | None]:
    """Load the newest checkpoint of ``run_dir`` into ``parts`` (weights, optimizer, both generators); returns
    (its step, its folder), or (0, None) for a fresh run. A run already past ``steps`` cannot go back to it
    (only its milestones are kept): that is an error naming them."""
    ckpt = latest_checkpoint(run_dir) if resume else None
    if ckpt is None and resume is False and any(run_dir.glob("step-*")):
        raise FileExistsError(f"{run_dir} already holds checkpoints; resume, or choose a new run folder")
    if ckpt is None:
        return 0, None
    if int(load_state(ckpt)["step"]) > steps:
        kept = ", ".join(str(s) for s in milestones(run_dir)) or "none"
        raise CheckpointError(f"{run_dir} is past step {steps} and kept no checkpoint there (milestones: {kept}); "
                              f"ask for a milestone's step, or train the shorter budget in a new run folder")
    check_configs(ckpt, model=model_cfg, diffusion=diff_cfg)
    load_weights(parts.model, ckpt / "model.safetensors")
    load_weights(parts.ema, ckpt / "ema.safetensors")
    state = load_state(ckpt)
    parts.opt.load_state_dict(state["optimizer"])
    parts.gen.set_state(state["rng"]["train"])
    torch.set_rng_state(state["rng"]["torch"])
    return int(state["step"]), ckpt


def _gradient(parts: _Parts, batch: Batch, data: CaptionedImages, text: TextBatch, index: torch.Tensor,
              diff_cfg: DiffusionConfig, dev: torch.device, precision: str, layout: torch.memory_format,
              ctx: distributed.Context, micro_batches: int) -> torch.Tensor:
    """Forward and backward passes over this rank's shard of ``batch``, in ``micro_batches`` equal parts whose
    gradients accumulate (the mean of their mean losses is the shard's, so the gradient is too); returns
    ``[loss, *per-resolution losses]`` of the global batch, still on the device."""
    idx, keep, t, eps0 = (distributed.shard(v, ctx) for v in (batch.idx, batch.keep, batch.t, batch.eps0))
    parts.opt.zero_grad(set_to_none=True)
    logged = 0.0
    chunks = torch.arange(len(idx)).chunk(micro_batches)
    for j, part in enumerate(chunks):
        ids = idx[part]
        with contextlib.nullcontext() if j == len(chunks) - 1 else distributed.no_sync(parts.ddp, ctx):
            x0 = data.batch(ids, dev)
            loss, per_level = step_loss(parts.net, x0, eps0[part].to(dev), t[part].to(dev), text[index[ids.to(dev)]],
                                        keep[part].to(dev), batch.crops, diff_cfg, dev, precision, layout)
            (loss / len(chunks)).backward()
        logged = logged + torch.stack([loss.detach(), *(v.detach() for v in per_level)]) / len(chunks)
    return distributed.mean_across(logged, ctx)  # the global batch's loss, as one process would report it


def _update(parts: _Parts, train_cfg: TrainConfig, step: int) -> None:
    """Clip, AdamW with linear warm-up, EMA (its decay ramps up over the first steps) for 0-based ``step``."""
    torch.nn.utils.clip_grad_norm_(parts.model.parameters(), train_cfg.grad_clip)
    for group in parts.opt.param_groups:
        group["lr"] = train_cfg.lr * min(1.0, (step + 1) / max(1, train_cfg.warmup_steps))
    parts.opt.step()
    ema_update(parts.ema, parts.model, min(train_cfg.ema_decay, (1 + step) / (10 + step)))


class _Books:
    """A run's bookkeeping: per-step losses (kept on the device and read back in one transfer: every step on
    the CPU, where reading is free and a bad loss is caught before the optimizer step, every 16 steps on a GPU,
    with no host sync in between), throughput and CPU share, the progress bar, and checkpoints."""

    def __init__(self, result: TrainResult, configs: dict, dev: torch.device, precision: str,
                 ctx: distributed.Context, total_steps: int, progress: bool, last_good: Path | None):
        self.result, self.configs, self.dev, self.precision, self.ctx = result, configs, dev, precision, ctx
        self.read_every = 1 if dev.type == "cpu" else 16
        self.pending: list[torch.Tensor] = []
        self.last_good = last_good  # named in the error message of a bad loss
        self.bar = tqdm(total=total_steps, initial=result.step, disable=not (progress and ctx.is_main),
                        desc=result.run_dir.name, unit="step")
        self.t_start: float | None = None
        self.cpu_start = 0.0
        self.images_seen = 0

    def add(self, logged: torch.Tensor, done: int) -> None:
        """Queue the losses of step ``done`` (1-based); read the queue once it is full."""
        self.pending.append(logged)
        if len(self.pending) >= self.read_every:
            self.read(done)  # before the optimizer step: a bad loss leaves the weights as they were

    def read(self, done: int) -> None:
        """Move the queued losses, which end with step ``done`` (1-based), to the result; stop at a bad one."""
        if not self.pending:
            return
        first = done - len(self.pending)
        rows = torch.stack(self.pending).tolist()
        self.pending.clear()
        for i, (value, *level_values) in enumerate(rows):
            if not math.isfinite(value):
                self.bar.close()
                raise NonFiniteLoss(f"loss is {value} at step {first + i + 1} of {self.result.run_dir}; last good "
                                    f"checkpoint: {self.last_good or 'none'}. Lower the learning rate or use "
                                    f"--precision fp32, then resume.")
            self.result.losses.append(value)
            self.result.level_losses.append(level_values)

    def tick(self, images: int, step: int) -> None:
        """Step ``step`` (1-based) of ``images`` images is done: throughput and CPU share (the first step, which
        pays for one-off set-up, is not timed), the progress bar and ``ldlib.runtime.progress``."""
        r = self.result
        if self.t_start is None:
            self.t_start, self.cpu_start = time.perf_counter(), time.process_time()
        else:
            self.images_seen += images
            wall = time.perf_counter() - self.t_start
            r.images_per_s = self.images_seen / wall
            if self.dev.type == "cpu":
                r.cpu_share = (time.process_time() - self.cpu_start) / (wall * torch.get_num_threads())
        self.bar.update(1)
        if r.losses and not self.pending:
            self.bar.set_postfix(loss=f"{r.losses[-1]:.4f}", img_s=f"{r.images_per_s:.1f}")
        if self.ctx.is_main:
            progress.report("training", r.run_dir.name, step, self.bar.total, images_per_s=r.images_per_s)

    def checkpoint(self, parts: _Parts, step: int) -> None:
        """Write checkpoint ``step`` (rank 0), once its losses are read and known finite."""
        self.read(step)
        r = self.result
        rng = {"train": parts.gen.get_state(), "torch": torch.get_rng_state()}
        history = {"losses": r.losses, "level_losses": r.level_losses, "images_per_s": r.images_per_s,
                   "cpu_share": r.cpu_share, "precision": self.precision, "device": str(self.dev)}
        if self.ctx.is_main:  # the checkpoint that ends the requested budget is a milestone: never pruned
            save_checkpoint(r.run_dir, step, parts.model, parts.ema, parts.opt, rng, self.configs, history=history,
                            milestone=step == self.configs["train"].steps)
        self.last_good = r.checkpoint = r.run_dir / f"step-{step:08d}"

    def close(self, step: int) -> TrainResult:
        self.read(step)
        self.bar.close()
        self.result.step = step
        return self.result


def train(
    model_cfg: UNetConfig,
    diff_cfg: DiffusionConfig,
    train_cfg: TrainConfig,
    data: CaptionedImages,
    text: TextBatch,
    text_index: torch.Tensor,
    run_dir: Path | str,
    device: str | None = None,
    resume: bool = True,
    init: Callable[[LayeredUNet], None] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    execution: Execution = Execution(),
) -> TrainResult:
    """Train (or resume) the run in ``run_dir``. ``text``/``text_index`` are the cached caption states and
    each image's row in them (``ldlib.data.text.encode_unique``). ``init`` may initialise a fresh model (model
    stacking). ``stop_after`` ends the loop early at that step, as an interruption would. ``execution`` chooses
    memory layout, ``torch.compile``, activation checkpointing and micro-batches (speed and memory only;
    ``ldlib.runtime.device``).

    ``run_dir`` holds one trajectory: asking for more steps than it has resumes it (nothing in a step depends on
    ``train_cfg.steps``: warm-up and EMA ramp count from step 0), and asking for the step of one of its milestones
    returns that checkpoint."""
    if tuple(diff_cfg.resolutions) != tuple(model_cfg.resolutions):
        raise ValueError(f"diffusion resolutions {diff_cfg.resolutions} != model resolutions {model_cfg.resolutions}")
    run_dir = Path(run_dir)
    kept = checkpoint_at(run_dir, train_cfg.steps) if resume else None
    if kept is not None:  # this budget was reached before (maybe on the way to a larger one)
        check_configs(kept, model=model_cfg, diffusion=diff_cfg)
        return TrainResult.from_history(run_dir, train_cfg.steps, read_history(kept), kept, train_cfg.steps)
    ctx, dev = distributed.setup(device)  # one process, or this rank of a torchrun job
    distributed.check_batch(train_cfg.batch_size, ctx, execution.micro_batches)
    precision = resolve_precision(train_cfg.precision, dev)
    data = prepare_images(data, model_cfg.resolutions[-1])
    parts = _build(model_cfg, train_cfg, dev, precision, execution, ctx, init)
    step, ckpt = _resume(run_dir, resume, parts, model_cfg, diff_cfg, train_cfg.steps)
    result = TrainResult.from_history(run_dir, step, read_history(ckpt) if ckpt is not None else {}, resumed_from=step)
    if step >= train_cfg.steps:
        result.checkpoint = ckpt
        return result

    parts.model.train()
    text_dev, index = text.to(dev), text_index.to(dev)
    layout = memory_format(dev, precision, execution)
    books = _Books(result, dict(model=model_cfg, diffusion=diff_cfg, train=train_cfg), dev, precision, ctx,
                   train_cfg.steps, progress, last_good=ckpt)
    while step < train_cfg.steps:
        batch = draw_batch(parts.gen, len(data), data.resolution, model_cfg, train_cfg)
        books.add(_gradient(parts, batch, data, text_dev, index, diff_cfg, dev, precision, layout, ctx,
                            execution.micro_batches), step + 1)
        _update(parts, train_cfg, step)
        step += 1
        books.tick(train_cfg.batch_size, step)
        if step % train_cfg.checkpoint_every == 0 or step == train_cfg.steps:
            books.checkpoint(parts, step)
        if stop_after is not None and step >= stop_after:
            break
    books.close(step)
    distributed.barrier(ctx)  # every rank returns only once rank 0's last checkpoint is on disk
    return result
