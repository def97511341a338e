"""Training memory of a model, estimated on the meta device (shapes only, no compute), so the ``paper``
preset's batch for one GPU can be sized on any machine.

What training keeps alive at the peak (end of the forward pass, start of the backward pass):

* the weights, their gradients, AdamW's two moments and the EMA copy: 5 x the parameter bytes (fp32);
* the activations autograd saves for the backward pass, counted exactly on the meta device with
  ``torch.autograd.graph.saved_tensors_hooks`` (a tensor saved by several operations is counted once; the
  weights are not counted again). On the CPU the count equals the one taken on real tensors, and the resident
  memory a forward pass of the ``cpu32`` 3-resolution model at batch 8 added was 380.7 MiB against 378.9
  estimated (192.5 vs 201.9 with checkpointing, whose estimate adds the one block recomputed at a time).

With activation checkpointing (``Execution(checkpoint_activations=True)``) a block keeps only its inputs and
is recomputed in the backward pass, one block at a time.

``precision="bf16"`` counts what CUDA's bf16 autocast saves: meta tensors cannot be autocast (and this CPU
build of torch cannot make CUDA ones, not even fake ones), so :class:`_AutocastLike` applies autocast's rules
to the operations the network uses: convolutions, linear layers, matmuls and attention run in bf16 (their
inputs and the cast weights are what is saved), normalisations and softmax in fp32, everything else follows
type promotion.

Not counted: the transient gradient buffers of the backward pass, cuDNN workspaces and the allocator's slack;
:func:`max_batch` therefore fills only ``headroom`` of the card.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..config import UNetConfig
from ..flops import table1_configs
from ..network import Block, build_model, set_activation_checkpointing

#: weights + gradients + AdamW (exp_avg, exp_avg_sq) + EMA copy, all in the parameters' dtype (fp32)
STATE_COPIES = 5


class _AutocastLike(TorchFunctionMode):
    """CUDA bf16 autocast's casting rules for the operations :mod:`ldlib.network` calls, for meta tensors."""

    LOWER = frozenset({F.conv2d, F.linear, torch.matmul, torch.bmm, torch.baddbmm, F.scaled_dot_product_attention})
    FP32 = frozenset({F.group_norm, F.layer_norm, F.softmax, torch.softmax})

    @staticmethod
    def _cast(args, kwargs, dtype):
        def cast(x):
            return x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.LOWER:
            args, kwargs = self._cast(args, kwargs, torch.bfloat16)
        elif func in self.FP32:
            args, kwargs = self._cast(args, kwargs, torch.float32)
        return func(*args, **kwargs)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes held at the peak of one training step of ``batch_size`` images."""

    batch_size: int
    parameters: int
    state_bytes: int  # STATE_COPIES x the fp32 parameter bytes
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.activation_bytes


PRECISIONS = ("fp32", "bf16")


def saved_activation_bytes(cfg: UNetConfig, batch_size: int, precision: str = "fp32",
                           checkpoint_activations: bool = False, text_tokens: int = 32) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one training step of ``batch_size``
    images (all K resolutions' inputs, as in eq. 3), in fp32 or under bf16 autocast.

    With ``checkpoint_activations`` each block keeps only its inputs, and the backward pass recomputes one
    block at a time: the figure is then what stays saved plus the largest block's own activations."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not checkpoint_activations:
        return count_saved_bytes(cfg, batch_size, precision, False, text_tokens)[0]
    kept, _ = count_saved_bytes(cfg, batch_size, precision, True, text_tokens)
    _, largest_block = count_saved_bytes(cfg, batch_size, precision, False, text_tokens)
    return kept + largest_block


@functools.lru_cache(maxsize=64)  # the batch-1/batch-2 counts are asked for again, with and without checkpointing
def count_saved_bytes(cfg: UNetConfig, batch_size: int, precision: str, checkpointed: bool, text_tokens: int,
                      device: str = "meta") -> tuple[int, int]:
    """(bytes saved for the backward pass, the most any one block saves itself); on the meta device unless
    told otherwise (the tests count real tensors too, and get the same bytes)."""
    saved: dict[int, int] = {}
    alive = []  # keeps every counted tensor referenced, so no storage id is reused while counting
    with torch.device(device):
        model = build_model(cfg)
        blocks = [m for m in model.modules() if isinstance(m, Block)]
        set_activation_checkpointing(model, checkpointed)
        weights = {p.untyped_storage()._cdata for p in model.parameters()}

        def keep(x: torch.Tensor) -> torch.Tensor:
            alive.append(x)
            key = x.untyped_storage()._cdata
            if key not in weights:
                saved[key] = x.untyped_storage().nbytes()
            return x

        block_bytes, start = [0], []

        def enter(module, args):
            if checkpointed:  # a checkpointed block holds on to its inputs until its recomputation
                for a in args:
                    if isinstance(a, torch.Tensor):
                        keep(a)
            start.append(sum(saved.values()))

        def leave(module, args, out):
            block_bytes.append(sum(saved.values()) - start.pop())

        hooks = [h for b in blocks for h in (b.register_forward_pre_hook(enter), b.register_forward_hook(leave))]
        z = [torch.zeros(batch_size, cfg.image_channels, r, r) for r in cfg.resolutions]
        t = torch.zeros(batch_size)
        tokens = torch.zeros(batch_size, text_tokens, cfg.text_dim)
        mask = torch.ones(batch_size, text_tokens, dtype=torch.bool)
        pooled = torch.zeros(batch_size, cfg.text_dim)
        cast = _AutocastLike() if precision == "bf16" else contextlib.nullcontext()
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda x: x), cast:
            model(z, t, tokens, mask, pooled)
        for h in hooks:
            h.remove()
    return sum(saved.values()), max(block_bytes)


@functools.lru_cache(maxsize=64)
def parameter_count(cfg: UNetConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(cfg).parameters())


def training_memory(cfg: UNetConfig, batch_size: int, precision: str = "fp32",
                    checkpoint_activations: bool = False) -> MemoryEstimate:
    n = parameter_count(cfg)
    activations = saved_activation_bytes(cfg, batch_size, precision, checkpoint_activations)
    return MemoryEstimate(batch_size, n, STATE_COPIES * 4 * n, activations)


def per_image_bytes(cfg: UNetConfig, precision: str = "fp32", checkpoint_activations: bool = False) -> tuple[int, int]:
    """(fixed bytes, bytes per image): the estimate is affine in the batch size, so two counts give all."""
    one, two = (training_memory(cfg, b, precision, checkpoint_activations) for b in (1, 2))
    per_image = two.activation_bytes - one.activation_bytes
    return one.total_bytes - per_image, per_image


def max_batch(cfg: UNetConfig, budget_bytes: float, precision: str = "fp32", checkpoint_activations: bool = False,
              headroom: float = 0.8) -> int:
    """Largest batch whose estimate fits in ``headroom`` x ``budget_bytes``; 0 when not even one image fits."""
    return _fitting_batch(*per_image_bytes(cfg, precision, checkpoint_activations), headroom * budget_bytes)


def _fitting_batch(fixed: int, per_image: int, budget_bytes: float) -> int:
    return max(0, int((budget_bytes - fixed) // per_image))


def table1_memory(preset: str = "paper", batch_size: int = 32, precision: str = "bf16", budget_gib: float = 80.0,
                  headroom: float = 0.8) -> list[dict]:
    """For each of Table 1's models built from ``preset``: the estimate at ``batch_size`` and the largest batch
    that fits ``headroom`` of a ``budget_gib`` device, without and with activation checkpointing."""
    rows = []
    for key, cfg in table1_configs(preset).items():
        row = {"model": key, "resolutions": list(cfg.resolutions), "batch_size": batch_size, "precision": precision,
               "budget_gib": budget_gib, "headroom": headroom}
        for suffix, ckpt in (("", False), ("_checkpointed", True)):
            fixed, per_image = per_image_bytes(cfg, precision, ckpt)
            row["total_gib" + suffix] = (fixed + batch_size * per_image) / 2**30
            row["max_batch" + suffix] = _fitting_batch(fixed, per_image, headroom * budget_gib * 2**30)
        row["parameters"] = parameter_count(cfg)
        row["state_gib"] = STATE_COPIES * 4 * row["parameters"] / 2**30
        rows.append(row)
    return rows


def memory_table(rows: list[dict]) -> str:
    """Markdown for :func:`table1_memory`'s rows."""
    r0 = rows[0]
    lines = [f"Estimated training memory ({r0['precision']}, batch {r0['batch_size']}; AdamW + EMA) and the largest "
             f"batch within {r0['headroom']:.0%} of {r0['budget_gib']:g} GiB, without / with activation checkpointing:",
             "", "| model | params | memory GiB | checkpointed GiB | max batch | max batch checkpointed |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.0f}M | {r['total_gib']:.1f} | "
                     f"{r['total_gib_checkpointed']:.1f} | {r['max_batch']} | {r['max_batch_checkpointed']} |")
    return "\n".join(lines)
