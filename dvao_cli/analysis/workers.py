"""Worker processes for `dvao analyze` on large logs.

Threads share one interpreter: on two cores, two of them computed a 100M-row log only 1.25x as
fast as one. Worker processes each read and compute their own ranges of whole steps
(`reader.stream.plan_ranges`) and send back a few sums per step. A spawned worker takes about
0.3 s to import numpy, polars and dvao, so they are used for large logs only
(PROCESS_MIN_ROWS), and the command line starts them before its own imports when the LOG
files' footers already say the log is that large (`start_early`: 0.15 s of a 3.7 s run,
measured). They are spawned, not forked: forking a process whose polars threads run can
deadlock.

Importing this module loads neither numpy nor polars.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from dvao_cli.errors import DvaoError

# Logs from this many rows are computed in worker processes when the caller allows it (the
# command line): below it, spawning them costs more than it saves (measured).
PROCESS_MIN_ROWS = 8_000_000


class WorkerDied(DvaoError):
    """A worker process ended without a result: the machine's doing (memory), exit 2."""


class WorkerPool:
    """`workers` - 1 spawned processes (this one is the last worker); `close` stops them.

    A worker that dies (killed by the kernel for memory, say) fails its range and every later
    one with `WorkerDied`, never a wait without end."""

    def __init__(self, workers: int, start: bool = False, warm: str = "") -> None:
        """`start`: spawn the workers now rather than with the first range; `warm`: a module
        each worker imports as it starts (the one whose functions its tasks run: a name, so
        that this module imports none of its callers)."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self._pool = ProcessPoolExecutor(
            workers - 1,
            mp_context=multiprocessing.get_context("spawn"),  # not fork: polars' threads run
            initializer=_worker_start,
            initargs=(warm,),
        )
        if start:
            for _ in range(workers - 1):
                self._pool.submit(int)  # a task each: the executor spawns a worker per task

    def submit(self, fn: Any, *args: Any) -> Any:
        """A future of fn(*args) in a worker; its result() raises WorkerDied for a dead one.
        The warnings fn raises there are raised again here, by get()."""
        return _Task(self._pool.submit(_recording_warnings, fn, *args))

    def close(self) -> None:
        """Stop the workers now, a range under way included (after an error or Ctrl-C)."""
        processes = dict(getattr(self._pool, "_processes", None) or {})
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Task:
    def __init__(self, future: Any) -> None:
        self._future = future

    def ready(self) -> bool:
        return self._future.done()

    def get(self) -> Any:
        import warnings
        from concurrent.futures.process import BrokenProcessPool

        try:
            result, raised = self._future.result()
        except BrokenProcessPool:
            raise WorkerDied(
                "a worker process of dvao analyze ended abruptly (killed, or out of memory?); "
                "DVAO_WORKERS=1 runs it in this process alone"
            ) from None
        for category, message in raised:  # shown by this process's filters and hook, once
            warnings.warn(message, category, stacklevel=2)
        return result


def _recording_warnings(fn: Any, *args: Any) -> tuple[Any, list[tuple[type[Warning], str]]]:
    """fn(*args) in a worker, with the warnings it raised as (category, message): the parent
    raises them again (`_Task.get`), where the command line prints a `DvaoWarning` as a
    `warning: ...` line; the worker itself prints none."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, [(w.category, str(w.message)) for w in caught]


def _worker_start(warm: str) -> None:
    """A worker's set-up: Ctrl-C left to the parent (which stops the workers: no traceback
    from each), the command line's allocator tuning, and the imports its tasks need (`warm`)."""
    import importlib
    import signal

    from dvao_cli.analysis.runtime import tune_for_streaming

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(os.getppid())
    tune_for_streaming()
    if warm:
        importlib.import_module(warm)


def watch_parent(parent: int, *, kernel: bool = False) -> None:
    """End this worker process within a fraction of a second of `parent`'s death, whatever
    ended it (SIGKILL included): a daemon thread polls the parent's id (which also covers a
    parent that died before this ran). `kernel`: on Linux, also ask the kernel to SIGKILL this
    process the moment its parent dies (prctl PR_SET_PDEATHSIG), for workers that compute for
    minutes between two looks at a queue. The kernel's signal follows the parent's thread that
    started this process, so only pools whose workers the main thread starts may ask for it."""
    import threading

    if kernel and sys.platform.startswith("linux"):
        _kill_with_parent()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _kill_with_parent() -> None:
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here: the poll alone ends the worker
        pass


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _exit_with_parent(parent: int) -> None:
    """End this worker once its parent is gone (killed with SIGKILL, say): the executor's
    queue would keep it waiting, and holding the parent's stdout, for ever."""
    import time

    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


def start_early(logs: Sequence[str], workers: int, warm: str = "") -> WorkerPool | None:
    """Workers started now (each importing `warm`) for LOG arguments that are Parquet files of
    at least PROCESS_MIN_ROWS rows together (from their footers, decoded here without numpy or
    polars); None for anything else (a folder, a glob, a trainer log, a smaller log: the
    analysis starts its workers itself if it needs them)."""
    import stat
    from pathlib import Path

    from dvao_cli.reader.footer import decode_footer

    if workers < 2:
        return None
    rows = 0
    for log in logs:
        try:
            if not stat.S_ISREG(os.stat(log).st_mode):  # a FIFO would block the open
                return None
            rows += decode_footer(Path(log)).num_rows
        except Exception:  # not a Parquet file this decoder reads: decided later
            return None
    return WorkerPool(workers, start=True, warm=warm) if rows >= PROCESS_MIN_ROWS else None
