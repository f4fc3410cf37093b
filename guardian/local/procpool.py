"""Worker processes for CPU-bound bulk work (snapshot capture, cold index decode) that die with us.

Threads do not help Python-heavy per-file work: each file releases the GIL several times (open,
fstat, read, hash, compress, write), and with three threads a first snapshot of 100k files made
3.1 M futex calls and cost twice the CPU of one thread (``strace -c -f``). Processes do.

Workers come from a forkserver (not ``fork``): ``guardian run`` has threads (watcher, scheduler,
HTTP), and a child forked from a threaded process can inherit a lock some other thread held.

A worker of a ``ProcessPoolExecutor`` outlives a parent killed with SIGKILL: it waits on its call
queue forever (it holds that pipe's write end itself), and it keeps the forkserver alive (it holds
the forkserver's alive pipe). So each worker watches the parent with a pidfd and exits the moment the
parent is gone; a worker killed mid-file leaves only guardian's own temp file, which the next writer
removes.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import select
import threading
import time


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# What the forkserver imports once, before it forks any worker: workers start with it in place
# (copy-on-write) instead of each importing numpy and the codecs (~0.15 s of CPU each). One list for
# every pool: a process has one forkserver, and only the first pool's preload list would count.
FORKSERVER_PRELOAD = ["__main__", "guardian.format.chromem", "guardian.index.decode", "guardian.snapshots.capture",
                      "guardian.snapshots.unpack"]


def new_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` forkserver processes that exit when this process dies. OSError or
    ValueError where processes cannot be made here. Shut it down when done: the last pool's shutdown
    stops the forkserver too."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(FORKSERVER_PRELOAD)   # used when the forkserver starts (once per process)
    return WorkerPool(max_workers=workers, mp_context=context, initializer=exit_with_parent,
                      initargs=(os.getpid(),))


_LIVE_POOLS = [0]
_LIVE_LOCK = threading.Lock()


class WorkerPool(concurrent.futures.ProcessPoolExecutor):
    """A pool whose shutdown, when no other pool of this process is alive, also stops the forkserver.

    The forkserver stays up after its last worker is gone, holding everything it preloaded (numpy,
    the codecs: its own private memory, not shared with this process); an always-on sidecar needs
    workers only for a first snapshot, a cold index build or a large restore, and would carry that
    process for good. The next pool starts a new one (~0.3 s, which a pool's user overlaps with its
    own work)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        with _LIVE_LOCK:
            _LIVE_POOLS[0] += 1
        self._counted = True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        with _LIVE_LOCK:
            if not self._counted:
                return
            self._counted = False
            _LIVE_POOLS[0] -= 1
            if _LIVE_POOLS[0] == 0 and wait:
                stop_forkserver()


def stop_forkserver() -> None:
    """Stop this process's forkserver if it runs (every worker is gone: it exits at once). Uses the
    stdlib's own stop (``ForkServer._stop``, there since 3.4); where it is missing the forkserver
    simply stays."""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        try:
            stop()
        except OSError:
            pass


def exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: exit at once when ``parent_pid`` exits (a daemon thread polls its pidfd)."""
    try:
        pidfd = os.pidfd_open(parent_pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # pragma: no cover - no pidfd (old kernel): poll the pid instead
        pidfd = None
    threading.Thread(target=_wait_for_exit, args=(parent_pid, pidfd), name="guardian-parent-watch",
                     daemon=True).start()


def _wait_for_exit(parent_pid: int, pidfd: int | None) -> None:
    if pidfd is not None:
        select.select([pidfd], [], [])
        os._exit(1)
    while True:  # pragma: no cover - no pidfd
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        time.sleep(0.5)
