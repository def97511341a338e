"""How the C allocator serves large blocks on the CPU: a speed setting, not part of any result.

glibc's malloc serves a block above its mmap threshold (128 KiB, raised adaptively up to 32 MiB) with freshly
mapped pages and hands them back to the kernel when the block is freed. A network call frees and allocates the
same activations every step; sampling a `cpu16` model at 64 px and batch 32 allocates blocks of exactly 32 MiB
(64 images, the batch doubled by guidance, x 32 channels x 64 x 64 floats) plus malloc's header, just above that
ceiling (seen with strace), so the kernel maps and zeroes them again at every call: on the 2-core EPYC,
124,000-160,000 page faults per sampling step and 19-25% of sampling's time in the kernel, and 12,000-20,000
faults per training step (``results/bench/allocator.md``).
:func:`keep_freed_memory` lets the heap serve such blocks and keep what is freed, the remedy PyTorch's CPU
tuning advice reaches with jemalloc or tcmalloc, here without a library outside the Python packages. What a step
computes is unchanged (where a tensor lives does not change its arithmetic); the process keeps its peak memory
instead of returning it between steps.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: set to "0" to leave the allocator as it is
ENV = "LDLIB_KEEP_FREED_MEMORY"
#: bytes: blocks below this come from the heap (glibc's M_MMAP_THRESHOLD; its 32 MiB ceiling on the adaptive
#: threshold would leave the largest activations mapped afresh every step)
MMAP_THRESHOLD = 1 << 30
#: bytes of free memory at the heap's top kept rather than returned to the kernel (M_TRIM_THRESHOLD)
TRIM_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
#: the same settings for processes started from this one (papermill's kernels, torchrun's workers): glibc reads
#: them at start-up
TUNABLES = f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}:glibc.malloc.trim_threshold={TRIM_THRESHOLD}"


def keep_freed_memory() -> bool:
    """Serve blocks below :data:`MMAP_THRESHOLD` from the heap and keep freed memory, in this process (glibc's
    ``mallopt``) and in the processes it starts (``GLIBC_TUNABLES``, appended to any already set). True when this
    process's allocator took the settings; False where ``LDLIB_KEEP_FREED_MEMORY=0``, off Linux or off glibc
    (another C library keeps its own behaviour)."""
    if os.environ.get(ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no libc.so.6 nor mallopt)
        return False
    taken = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    current = os.environ.get("GLIBC_TUNABLES", "")
    if taken and TUNABLES not in current:
        os.environ["GLIBC_TUNABLES"] = f"{current}:{TUNABLES}" if current else TUNABLES
    return taken
