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
from collections import deque
from typing import Callable


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


QUEUED_PER_WORKER = 2   # items submitted ahead per worker, so it never waits for the next


def warm_up() -> None:
    """The first task of each worker: returns once the worker is up (everything is preloaded)."""


class SharedWork:
    """Items 0..count-1 done by this thread from the front of the list and by worker processes from
    the back, so neither waits for the other until the last items (a first snapshot's chunks, a
    restore's runs).

    ``submit(pool, n)`` hands item n to a worker (a Future); ``merge(n, result)`` takes its result;
    ``local(n, retaken)`` does item n on this thread, ``retaken`` when a worker died with it. The
    pool starts from a thread (starting the forkserver and its workers blocks ~0.3 s) while this
    thread works; ``wait_for_workers`` waits instead (the test hook: workers surely get items). A
    pool that cannot start or breaks leaves its items to this thread. A failure stops the work once
    every item already in a worker is back, each finished one merged (so what it wrote is cleaned
    up with the rest), then raises."""

    def __init__(self, workers: int, submit: Callable, local: Callable[[int, bool], None],
                 merge: Callable[[int, object], None], wait_for_workers: bool = False) -> None:
        self.workers, self.submit, self.local, self.merge = workers, submit, local, merge
        self.wait_for_workers = wait_for_workers
        self.broken = False   # the pool could not start or a worker died: the rest is done here

    def run(self, count: int) -> None:
        try:
            pool = new_pool(self.workers)
        except (OSError, ValueError):   # no processes here: every item on this thread
            for n in range(count):
                self.local(n, False)
            return
        starter = threading.Thread(target=self._start, args=(pool,), name="guardian-pool-start", daemon=True)
        starter.start()
        if self.wait_for_workers:
            starter.join()
        flying: dict[concurrent.futures.Future, int] = {}
        try:
            self._share(pool, count, flying, starter)
        except BaseException:
            self._settle(flying)
            raise
        finally:
            starter.join()
            pool.shutdown(wait=True, cancel_futures=True)

    def _start(self, pool) -> None:
        try:
            concurrent.futures.wait([pool.submit(warm_up) for _ in range(self.workers)])
        except Exception:  # noqa: BLE001 - workers that cannot start: the items are done here
            self.broken = True

    def _share(self, pool, count: int, flying: dict, starter: threading.Thread) -> None:
        pending = deque(range(count))
        retaken: set[int] = set()
        while pending or flying:
            ready = not self.broken and not starter.is_alive()
            while ready and pending and len(flying) < self.workers * QUEUED_PER_WORKER:
                n = pending.pop()
                try:
                    flying[self.submit(pool, n)] = n
                except (concurrent.futures.BrokenExecutor, RuntimeError):
                    self.broken, ready = True, False
                    pending.append(n)
            for future in [f for f in flying if f.done()]:
                n = flying.pop(future)
                try:
                    self.merge(n, future.result())
                except concurrent.futures.BrokenExecutor:   # a worker died: its item is done here
                    self.broken = True
                    retaken.add(n)
                    pending.append(n)
            if pending:
                n = pending.popleft()
                self.local(n, n in retaken)
            elif flying:
                concurrent.futures.wait(flying, return_when=concurrent.futures.FIRST_COMPLETED)

    def _settle(self, flying: dict) -> None:
        for future in flying:
            future.cancel()
        for future, n in flying.items():
            if future.cancelled():
                continue
            try:
                self.merge(n, future.result())
            except BaseException:  # noqa: BLE001 - the first failure is the one reported
                continue
