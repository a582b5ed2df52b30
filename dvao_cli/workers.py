"""Worker processes for `dvao analyze` on large logs.

Threads share one interpreter: on two cores, two of them computed a 100M-row log only 1.25x as
fast as one. Worker processes each read and compute their own ranges of whole steps
(`reader.stream.plan_ranges`) and send back a few sums per step. A spawned worker takes about
0.3 s to import numpy, polars and dvao, so they are used for large logs only
(`analyze.PROCESS_MIN_ROWS`). They are spawned, not forked: forking a process whose polars
threads run can deadlock. Starting them before the command's own imports bought nothing
(measured: the parent's reader already keeps both cores busy then).

Importing this module loads neither numpy nor polars.
"""

from __future__ import annotations

from typing import Any

from dvao_cli.errors import DvaoError


class WorkerDied(DvaoError):
    """A worker process ended without a result: the machine's doing (memory), exit 2."""


class WorkerPool:
    """`workers` - 1 spawned processes (this one is the last worker); `close` stops them.

    A worker that dies (killed by the kernel for memory, say) fails its range and every later
    one with `WorkerDied`, never a wait without end."""

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self._pool = ProcessPoolExecutor(
            workers - 1,
            mp_context=multiprocessing.get_context("spawn"),  # not fork: polars' threads run
            initializer=_worker_start,
        )

    def submit(self, fn: Any, *args: Any) -> Any:
        """A future of fn(*args) in a worker; its result() raises WorkerDied for a dead one."""
        return _Task(self._pool.submit(fn, *args))

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
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._future.result()
        except BrokenProcessPool:
            raise WorkerDied(
                "a worker process of dvao analyze ended abruptly (killed, or out of memory?); "
                "DVAO_WORKERS=1 runs it in this process alone"
            ) from None


def _worker_start() -> None:
    """A worker's set-up: Ctrl-C left to the parent (which stops the workers: no traceback
    from each), the command line's allocator tuning, and the imports its tasks need."""
    import signal

    from dvao_cli.runtime import tune_for_streaming

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_for_streaming()
    import dvao_cli.analyze  # noqa: F401
