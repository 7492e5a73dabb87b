"""CPU threads for the untaped MPM substep: the thread count setting and a persistent worker pool.

Warp runs a CPU kernel on the thread that launches it, one particle after another. It calls
the compiled kernel through a ctypes function pointer, and ctypes releases the GIL for the
duration of the call, so kernels launched from several Python threads over disjoint parts of
the work run in parallel on several cores. The substep uses this phase by phase (scatter,
grid update, gather): each worker launches the same kernel over its own contiguous range
of particles or grid blocks, and the phase ends when every worker is done (one barrier per
phase). Workers are created once and reused (no thread is created per substep).

Warp's CPU `atomic_add` is a plain read-modify-write, so workers never accumulate into the
same memory: each scatters into its own grid copy (summed, in a fixed order, by the grid
update), counts divergence in its own flags and accumulates collider forces in its own rows.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence

from physim.errors import ConfigError

__all__ = ["CPU_THREADS_ENV", "WorkerPool", "resolve_cpu_threads", "worker_pool"]

CPU_THREADS_ENV = "PHYSIM_CPU_THREADS"
MAX_THREADS = 256


def _check(field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THREADS:
        raise ConfigError(field, value, f"an integer from 1 to {MAX_THREADS} (threads of the untaped CPU substep)")
    return value


def resolve_cpu_threads(value: int | None) -> int:
    """Threads of the untaped CPU substep: `value` if given, else ``PHYSIM_CPU_THREADS``, else 1.

    Raises:
        ConfigError: `value` or the environment variable is not an integer from 1 to 256.
    """
    if value is not None:
        return _check("cpu_threads", value)
    raw = os.environ.get(CPU_THREADS_ENV)
    if raw is None or not raw.strip():
        return 1
    try:
        parsed = int(raw.strip())
    except ValueError:
        raise ConfigError(CPU_THREADS_ENV, raw,
                          f"an integer from 1 to {MAX_THREADS} (threads of the untaped CPU substep)") from None
    return _check(CPU_THREADS_ENV, parsed)


class WorkerPool:
    """`threads` − 1 persistent daemon workers; `run` gives one task to each thread, the caller included.

    Example::

        pool = WorkerPool(2)
        pool.run([lambda: launch_range(0, n // 2), lambda: launch_range(n // 2, n)])
    """

    def __init__(self, threads: int):
        self.threads = _check("threads", threads)
        self._lock = threading.Lock()  # one phase at a time (simulators stepped from several threads)
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._inbox: list[queue.SimpleQueue] = []
        for i in range(threads - 1):
            q: queue.SimpleQueue = queue.SimpleQueue()
            threading.Thread(target=self._work, args=(q,), name=f"physim-mpm-{i + 1}", daemon=True).start()
            self._inbox.append(q)

    def _work(self, inbox: queue.SimpleQueue) -> None:
        while True:
            task = inbox.get()
            try:
                task()
            except BaseException as exc:  # handed to the caller of `run`
                self._done.put(exc)
            else:
                self._done.put(None)

    def run(self, tasks: Sequence[Callable[[], None]]) -> None:
        """Run `tasks[0]` on the calling thread and the others on the workers; return when all are done.

        The first exception raised by any task is raised here, after every task has finished.
        """
        if len(tasks) > self.threads:
            raise ValueError(f"{len(tasks)} tasks for a pool of {self.threads} threads")
        with self._lock:
            for q, task in zip(self._inbox, tasks[1:], strict=False):
                q.put(task)
            error = None
            try:
                tasks[0]()
            except BaseException as exc:
                error = exc
            for _ in range(len(tasks) - 1):
                res = self._done.get()
                if res is not None and error is None:
                    error = res
            if error is not None:
                raise error


_pools: dict[int, WorkerPool] = {}
_pools_lock = threading.Lock()


def worker_pool(threads: int) -> WorkerPool:
    """The process's shared pool of `threads` threads (created on first use)."""
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = WorkerPool(threads)
        return pool


def _forget_pools() -> None:
    # a forked child has none of the parent's worker threads: it starts its own pools
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)
