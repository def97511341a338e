"""Data-parallel training with PyTorch's own engine: ``torchrun`` + ``torch.distributed`` +
DistributedDataParallel (NCCL on CUDA, Gloo on the CPU).

``ldlib.training.train`` calls :func:`setup` and runs unchanged under ``torchrun``. The design keeps a run on W
processes equal to the same run on one (same seed, same global batch):

* every rank draws the same *global* batch (images, t, noise, caption drops, crop plan) from the run's one
  seeded generator and computes only its shard (:func:`shard`), so the sampler is a seeded distributed
  sampler whose draws do not depend on the world size;
* each rank's loss is the mean over its shard and DDP averages gradients, which gives the gradient of the
  global mean loss (shards are equal: the global batch must divide by the world size);
* optimizer, clipping and EMA then see identical gradients on every rank; rank 0 alone writes checkpoints
  (atomically), and because a checkpoint holds the global generator state a run resumes on any world size.

Collectives time out after ``LDLIB_DIST_TIMEOUT_S`` seconds (default 300), so a dead rank ends the job with an
error instead of a hang; ``torchrun`` also stops the other workers when one exits, and ``--max-restarts``
restarts them from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .device import pick_device


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: str | None = None) -> tuple[Context, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment (no-op for one process) and
    pick this rank's device (``cuda:<LOCAL_RANK>`` with NCCL, else the CPU with Gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(), pick_device(device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(os.environ.get("LDLIB_DIST_TIMEOUT_S", "300")))
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timeout)
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    return Context(dist.get_rank(), dist.get_world_size(), local), dev


def current() -> Context:
    """The process group this process already belongs to (a one-process context if none)."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Context()


def gather_indexed(items: dict, ctx: Context) -> dict:
    """Merge every rank's ``{index: value}`` (values moved to the CPU) into one dict on every rank."""
    if not ctx.active:
        return items
    parts = [None] * ctx.world
    dist.all_gather_object(parts, {k: v.cpu() if hasattr(v, "cpu") else v for k, v in items.items()})
    return {k: v for part in parts for k, v in part.items()}


def shard(x: torch.Tensor, ctx: Context) -> torch.Tensor:
    """This rank's equal slice of a global batch (dimension 0)."""
    if not ctx.active:
        return x
    n = x.shape[0] // ctx.world
    return x[ctx.rank * n : (ctx.rank + 1) * n]


def check_batch(batch_size: int, ctx: Context, micro_batches: int = 1) -> None:
    """The global batch splits into equal shards, one per process, and each shard into ``micro_batches``."""
    if batch_size % ctx.world:
        raise ValueError(f"the global batch {batch_size} must divide by the number of processes {ctx.world}; "
                         f"choose a batch size that is a multiple of {ctx.world}")
    if micro_batches < 1 or (batch_size // ctx.world) % micro_batches:
        raise ValueError(f"micro_batches={micro_batches} must divide each process's batch {batch_size // ctx.world} "
                         f"(global batch {batch_size}, {ctx.world} process(es))")


def mean_across(x: torch.Tensor, ctx: Context) -> torch.Tensor:
    """The average of ``x`` over ranks (``x`` itself for one process)."""
    if not ctx.active:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / ctx.world


def wrap(model: torch.nn.Module, ctx: Context, device: torch.device) -> torch.nn.Module:
    """The module to call in training: DistributedDataParallel over ``model`` when there are several ranks."""
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def no_sync(wrapped: torch.nn.Module, ctx: Context):
    """Skip the gradient all-reduce of this backward pass (all micro-batches of a step but the last)."""
    return wrapped.no_sync() if ctx.active else contextlib.nullcontext()


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()
