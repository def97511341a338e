"""Device, numeric precision and execution choices, made by capability and by measurement rather than by default.

Every choice here changes speed or memory, not what is computed (beyond floating-point noise); each was
measured with ``benchmarks/bench.py`` on the machine it targets (numbers in ``results/bench/``):

* precision: bf16 autocast only where the hardware computes bf16 natively (CUDA, AVX-512 BF16/AMX CPUs). On an
  AVX2-only CPU a bf16 matmul runs at ~0.3 GFLOP/s against ~140 GFLOP/s in fp32, so fp32 is chosen there; on
  the AVX-512 BF16 CPU measured below, bf16 trained 1.5x and sampled 1.2x faster than fp32.
* memory format: channels_last on the CPU in fp32. On the 2-core AVX2 machine it made sampling 1.20-1.25x faster in
  an interleaved same-process A/B (bench.py --ablate: 4 repetitions each, cpu16 at 64 px and cpu32 at 128 px,
  spread < 3%); the benchmark's separate-process rows gave 1.37x and 0.98x in two runs (cross-process noise is
  that large), and training neither faster nor slower beyond run-to-run noise (+-7%). bf16 keeps the default
  (contiguous) layout: on a 2-core AMD EPYC with AVX-512 BF16 (no AMX; ``benchmarks/precision_layout.py``,
  ``results/bench/amd-epyc-precision-layout.md``, cpu16 at 64 px, interleaved A/B) bf16 training ran 1.47-1.50x
  faster than fp32 in the default layout but only 1.18-1.19x in channels_last, and bf16 sampling was 1.17-1.27x
  faster than fp32 in either layout (within 2% of each other). CUDA keeps the default layout until measured there.
* the capability probe (:func:`cpu_has_native_bf16`) reads ``/proc/cpuinfo``; ``LDLIB_CPU_BF16=1`` or ``=0``
  overrides it, so that both branches can be run (and tested) on any machine.
* ``torch.compile``: an option (``Execution(compile=True)``, ``ldlib train --compile``) for long runs on a GPU;
  on the CPU it bought x1.05 (within noise: training runs at ~60% of the convolution ceiling, conv-bound) for
  about a minute of compilation per model.
* activation checkpointing: an option (``Execution(checkpoint_activations=True)``, ``ldlib train
  --checkpoint-activations``) for models whose activations outgrow the device: ``ldlib memory`` estimates
  them; the ``paper`` preset at 512 px needs it to train more than a few images per step on an 80 GB GPU. On the
  CPU it cost 16% of training speed (cpu16, 64 px: 30.4 vs 36.3 images/s), less than the extra forward pass.
* micro-batches: an option (``Execution(micro_batches=N)``, ``ldlib train --micro-batches``) that accumulates
  each step's gradient over N parts of the batch, for batches larger than memory allows.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` if given ("cpu", "cuda", "cuda:1"), else CUDA when available, else the CPU."""
    if requested:
        dev = torch.device(requested)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but no CUDA device is available (is the CUDA build of torch installed?)")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: set to 1 or 0 to override the CPU probe (both branches of every capability choice can then run anywhere)
CPU_BF16_ENV = "LDLIB_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 autocast is slower.
    ``LDLIB_CPU_BF16=1`` / ``=0`` overrides the probe."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip()
    if forced:
        if forced not in ("0", "1"):
            raise ValueError(f"{CPU_BF16_ENV} must be 1 (native bf16) or 0 (none), got {forced!r}; unset it to probe")
        return forced == "1"
    return _cpu_flags_have_bf16()


@lru_cache(maxsize=1)
def _cpu_flags_have_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` means bf16 on CUDA and on CPUs with native bf16, else fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    """The forward-pass context for ``precision`` ("bf16" autocasts, "fp32" does nothing)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass(frozen=True)
class Execution:
    """How to run a network, not what it computes; not part of a run's cache key. ``channels_last``: None
    chooses by device and precision (:func:`memory_format`); ``compile``: wrap the network in
    ``torch.compile`` (training only); ``checkpoint_activations``: recompute each block in the backward pass
    (training only; trades about a third more compute for most of the activation memory, see
    ``ldlib.training.memory``); ``micro_batches``: split each step's batch (each rank's shard of it) into this many
    parts whose gradients are accumulated, for batches larger than the device holds (same step, same update)."""

    channels_last: bool | None = None
    compile: bool = False
    checkpoint_activations: bool = False
    micro_batches: int = 1


def memory_format(device: torch.device, precision: str, execution: Execution = Execution()) -> torch.memory_format:
    """The layout for the network's weights and inputs: channels_last on the CPU in fp32 unless told otherwise
    (bf16 and CUDA keep the default layout: channels_last was measured faster only in fp32 on the CPU)."""
    use = execution.channels_last
    if use is None:
        use = device.type == "cpu" and precision == "fp32"
    return torch.channels_last if use else torch.contiguous_format


def place(model: torch.nn.Module, device: torch.device, precision: str, execution: Execution = Execution()) -> torch.nn.Module:
    """``model`` on ``device`` in the layout :func:`memory_format` chooses (in place; returned for chaining)."""
    return model.to(device=device, memory_format=memory_format(device, precision, execution))
