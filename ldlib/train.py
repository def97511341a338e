"""Training a layered model on eq. (3): AdamW, EMA, gradient clipping, checkpoints, resume.

One training step, in data-flow order:

    idx -> x0 (top resolution, in memory) and cached caption states
    t ~ U[0, 1], eps0 ~ N(0, I) at the top resolution, caption dropped with cond_drop_prob
    [strategic cropping: one nested crop plan for the batch, section 3.1]
    ldlib.loss.training_inputs: z_i = alpha_{t,i} D(x0, i) + sigma_{t,i} S(eps0, i)
    LayeredUNet(z, t, text) -> x_hat_i;  ldlib.loss.layered_loss -> backward -> clip -> AdamW -> EMA

Every random draw comes from one seeded generator whose state is saved in each checkpoint, so a run
resumed from a checkpoint continues exactly as if it had never stopped (on the CPU, bit for bit).
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

from . import distributed
from .checkpoint import check_configs, latest_checkpoint, load_state, load_weights, read_history, save_checkpoint
from .config import DiffusionConfig, TrainConfig, UNetConfig
from .crop import nested_crop_boxes
from .data import CaptionedImages, to_float, to_uint8
from .device import Execution, autocast, memory_format, pick_device, place, resolve_precision
from .loss import layered_loss, training_inputs
from .network import LayeredUNet, build_model
from .pyramid import downsample
from .text import TextBatch


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
    each image's row in them (``ldlib.text.encode_unique``). ``init`` may initialise a fresh model (model
    stacking). ``stop_after`` ends the loop early at that step, as an interruption would. ``execution`` chooses
    memory layout and ``torch.compile`` (speed only; ``ldlib.device``)."""
    if tuple(diff_cfg.resolutions) != tuple(model_cfg.resolutions):
        raise ValueError(f"diffusion resolutions {diff_cfg.resolutions} != model resolutions {model_cfg.resolutions}")
    run_dir = Path(run_dir)
    ctx, dev = distributed.setup(device)  # one process, or this rank of a torchrun job
    distributed.check_batch(train_cfg.batch_size, ctx, execution.micro_batches)
    precision = resolve_precision(train_cfg.precision, dev)
    data = prepare_images(data, model_cfg.resolutions[-1])

    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg)
    if init is not None:
        init(model)
    layout = memory_format(dev, precision, execution)
    place(model, dev, precision, execution)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    net = ddp = distributed.wrap(model, ctx, dev)
    if execution.compile:
        net = torch.compile(net)
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, betas=train_cfg.betas, weight_decay=train_cfg.weight_decay)
    gen = torch.Generator().manual_seed(train_cfg.seed + 1)
    step = 0

    ckpt = latest_checkpoint(run_dir) if resume else None
    if ckpt is None and resume is False and any(run_dir.glob("step-*")):
        raise FileExistsError(f"{run_dir} already holds checkpoints; resume, or choose a new run folder")
    if ckpt is not None:
        check_configs(ckpt, model=model_cfg, diffusion=diff_cfg)
        load_weights(model, ckpt / "model.safetensors")
        load_weights(ema, ckpt / "ema.safetensors")
        state = load_state(ckpt)
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"]["train"])
        torch.set_rng_state(state["rng"]["torch"])
        step = int(state["step"])
    result = TrainResult.from_history(run_dir, step, read_history(ckpt) if ckpt is not None else {}, resumed_from=step)
    if step >= train_cfg.steps:
        result.checkpoint = ckpt
        return result

    model.train()
    text_dev = text.to(dev)
    index = text_index.to(dev)
    configs = dict(model=model_cfg, diffusion=diff_cfg, train=train_cfg)
    bar = tqdm(total=train_cfg.steps, initial=step, disable=not (progress and ctx.is_main), desc=run_dir.name, unit="step")
    t_start, images_seen = None, 0
    last_good = ckpt
    b = train_cfg.batch_size  # the global batch; each rank computes its shard of it
    # Losses stay on the device until read back in one transfer: every step on the CPU (where reading is free and
    # a bad loss is caught before the optimizer step), every 16 steps on a GPU (no host sync in between).
    read_every = 1 if dev.type == "cpu" else 16
    pending: list[torch.Tensor] = []

    def read_losses(first_step: int) -> None:
        """Move the pending per-step losses to ``result``; ``first_step`` is the 0-based step of the oldest."""
        if not pending:
            return
        rows = torch.stack(pending).tolist()
        pending.clear()
        for i, (value, *level_values) in enumerate(rows):
            if not math.isfinite(value):
                bar.close()
                raise NonFiniteLoss(f"loss is {value} at step {first_step + i + 1} of {run_dir}; last good checkpoint: "
                                    f"{last_good or 'none'}. Lower the learning rate or use --precision fp32, then resume.")
            result.losses.append(value)
            result.level_losses.append(level_values)

    while step < train_cfg.steps:
        idx = torch.randint(len(data), (b,), generator=gen)
        keep = torch.rand(b, generator=gen) >= train_cfg.cond_drop_prob
        t = torch.rand(b, generator=gen)
        eps0 = torch.randn((b, 3, data.resolution, data.resolution), generator=gen)
        crops = nested_crop_boxes(model_cfg.resolutions, train_cfg.crop_size, gen) if train_cfg.crop_size else None

        idx, keep, t, eps0 = (distributed.shard(v, ctx) for v in (idx, keep, t, eps0))
        opt.zero_grad(set_to_none=True)
        logged = 0.0
        # Equal micro-batches: the mean of their mean losses is the batch's, so the accumulated gradient is too.
        parts = torch.arange(len(idx)).chunk(execution.micro_batches)
        for j, part in enumerate(parts):
            ids = idx[part]
            with contextlib.nullcontext() if j == len(parts) - 1 else distributed.no_sync(ddp, ctx):
                x0 = data.batch(ids, dev)
                tb = text_dev[index[ids.to(dev)]]
                loss, per_level = step_loss(net, x0, eps0[part].to(dev), t[part].to(dev), tb, keep[part].to(dev), crops,
                                            diff_cfg, dev, precision, layout)
                (loss / len(parts)).backward()
            logged = logged + torch.stack([loss.detach(), *(v.detach() for v in per_level)]) / len(parts)
        if ctx.active:  # report the global batch's loss, as one process would
            logged = distributed.mean_across(logged, ctx)
        pending.append(logged)
        if len(pending) >= read_every:
            read_losses(step + 1 - len(pending))  # before the optimizer step: a bad loss leaves the weights as they were
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        for group in opt.param_groups:
            group["lr"] = train_cfg.lr * min(1.0, (step + 1) / max(1, train_cfg.warmup_steps))
        opt.step()
        ema_update(ema, model, min(train_cfg.ema_decay, (1 + step) / (10 + step)))
        step += 1

        if t_start is None:
            t_start, cpu_start = time.perf_counter(), time.process_time()  # the first step pays for one-off set-up
        else:
            images_seen += b
        if images_seen:
            wall = time.perf_counter() - t_start
            result.images_per_s = images_seen / wall
            if dev.type == "cpu":
                result.cpu_share = (time.process_time() - cpu_start) / (wall * torch.get_num_threads())
        bar.update(1)
        if result.losses and not pending:
            bar.set_postfix(loss=f"{result.losses[-1]:.4f}", img_s=f"{result.images_per_s:.1f}")
        if step % train_cfg.checkpoint_every == 0 or step == train_cfg.steps:
            read_losses(step - len(pending))  # a checkpoint is written only once its losses are known finite
            rng = {"train": gen.get_state(), "torch": torch.get_rng_state()}
            history = {"losses": result.losses, "level_losses": result.level_losses, "images_per_s": result.images_per_s,
                       "cpu_share": result.cpu_share, "precision": precision, "device": str(dev)}
            if ctx.is_main:
                save_checkpoint(run_dir, step, model, ema, opt, rng, configs, history=history)
            last_good = result.checkpoint = run_dir / f"step-{step:08d}"
        if stop_after is not None and step >= stop_after:
            break
    read_losses(step - len(pending))
    bar.close()
    distributed.barrier(ctx)  # every rank returns only once rank 0's last checkpoint is on disk
    result.step = step
    return result


def load_model(ckpt: Path | str, use_ema: bool = True, device: str | None = None) -> tuple[LayeredUNet, dict]:
    """A trained network (EMA weights by default) and the configs it was trained with."""
    from .checkpoint import read_configs

    ckpt = Path(ckpt)
    if not (ckpt / "config.json").exists():
        found = latest_checkpoint(ckpt)
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {ckpt}; train one with `ldlib train`")
        ckpt = found
    configs = read_configs(ckpt)
    model = build_model(configs["model"])
    load_weights(model, ckpt / ("ema.safetensors" if use_ema else "model.safetensors"))
    dev = pick_device(device)
    return place(model, dev, resolve_precision("auto", dev)).eval(), configs
