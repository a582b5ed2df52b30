"""Process-wide tuning for the command line's long jobs (never applied to library callers).

Measured on 2 cores (docs/performance.md): chunks of about 1M rows with one torch thread, while
polars reads the next chunk on the other core, beat two torch threads by 2-3x. Two threads on
small per-chunk tensors spend their time waiting for each other, and more so on a busy machine.
glibc hands large freed blocks back to the kernel, so every chunk pays page faults again for
memory it just released; raising the thresholds keeps that memory for reuse (up to 256 MiB of
it: keeping 1 GiB bought no speed and cost peak memory).
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_for_streaming(torch_threads: int | None = None) -> None:
    """One torch thread (or DVAO_TORCH_THREADS) and allocators that keep freed memory (glibc's
    for numpy, polars' jemalloc; a user's own _RJEM_MALLOC_CONF is kept).

    Torch is not imported for this: a run that never needs the engine never pays for it. When
    it is not loaded yet, OMP_NUM_THREADS tells it (and numpy's BLAS) how many threads to use.
    """
    threads = max(1, torch_threads or int(os.environ.get("DVAO_TORCH_THREADS", "1")))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    if "polars" not in sys.modules:  # polars appends this to its own jemalloc settings when
        # it loads (dirty pages back to the kernel after 500 ms): keep freed pages instead of
        # faulting them in again for the next range (0.08 s of system time of a 3 s run on 100M
        # rows, measured; peak RSS the same)
        os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)  # keep up to 256 MiB of freed heap
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's upper limit on 64-bit
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        pass


def stream_workers() -> int:
    """Chunks computed at once: one per core (DVAO_WORKERS overrides), at most 8."""
    value = os.environ.get("DVAO_WORKERS")
    if value:
        return max(1, int(value))
    return max(1, min(8, os.cpu_count() or 1))


def gpu_present() -> bool:
    """Whether this machine may have a CUDA GPU, without importing torch: a device node of the
    NVIDIA (or ROCm) driver. Only then does `--device auto` ask torch (and pay its import)."""
    if "torch" in sys.modules:
        return bool(sys.modules["torch"].cuda.is_available())
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd"))
