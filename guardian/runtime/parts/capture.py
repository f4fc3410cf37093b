"""Continuous capture: every change the watcher sees is in a committed snapshot within seconds.

The watcher hands over every raw event (``store_changed``); changed paths gather in a
:class:`~guardian.runtime.capture.CaptureQueue` and, once a burst is over (or ``max_wait`` after
its first change), one incremental snapshot reads just those paths on top of the previous one,
kept in memory. Retention then forgets what it no longer keeps (ids only, cheap); garbage is
collected by the hourly full snapshot, which also catches any event the watcher lost.

A file a process holds open for writing is not captured yet: it is a write in progress (chromem
truncates, then writes), not a version of the file - read now, a 0-byte file would become a
"damaged" row. It waits in the queue, asked about again each time, and is captured once its writer
has closed it (or once guardian put a good copy in its place, ``repair.held``).

When the store folder itself is gone (removed or moved away while guarded), nothing is captured:
an empty snapshot would become "latest" and `guardian restore --at latest` would bring back
nothing. The pending changes wait (one warning and one ``store_gone`` alert, not a failure every
few seconds) and are captured when a store is back at the path.
"""

from __future__ import annotations

import os
import threading
import time

from guardian.errors import GuardianError
from guardian.local.holders import written_among
from guardian.runtime import alerts
from guardian.runtime.capture import CaptureQueue
from guardian.runtime.context import SNAPSHOT_TAKEN, STORE_CHANGED
from guardian.runtime.metrics_feed import update_snapshot_metrics
from guardian.runtime.parts import ThreadedPart
from guardian.snapshots.prune import forget_and_prune_for
from guardian.snapshots.repository import Repository
from guardian.snapshots.take import prepare_baseline, take_snapshot

RETRY_SECONDS = 2.0
LOGGED_PATHS = 2000  # a capture's log line names its paths up to this many (the bench reads them)


class CapturePart(ThreadedPart):
    name = "capture"
    thread_name = "guardian-capture"

    def __init__(self, ctx, clock=time.monotonic) -> None:
        super().__init__(ctx)
        config = ctx.config
        self.clock = clock
        self.queue = CaptureQueue(config.capture_quiet_seconds, config.capture_max_wait_seconds)
        self.baseline = None
        self.repo = None   # one repository object for every capture: its blob index is kept, not rebuilt
        self.prime_wanted = True   # read the newest snapshot ahead (start-up, or another part took one)
        self.worker_ident: int | None = None
        self.captures = 0
        self.failures = 0
        self.store_gone = False
        self.held: set[str] = set()   # changed files a process still held for writing at the last look
        self.last: dict | None = None

    def start(self) -> None:
        self.ctx.on(STORE_CHANGED, self.on_changes)
        self.ctx.on(SNAPSHOT_TAKEN, self.on_snapshot_taken)
        self.start_thread()

    def stop(self) -> None:
        self.stop_thread()
        with self.cond:
            oldest = self.queue.oldest_age(self.clock())
            paths = self.queue.take()
        if paths:  # a clean stop captures what is still pending
            self.capture(paths, oldest, retry=False)

    def on_changes(self, events) -> None:
        """Observer thread: note the paths, wake the worker; nothing slow here."""
        with self.cond:
            self.queue.add({str(e.rel) for e in events}, self.clock())
            self.cond.notify_all()

    def on_snapshot_taken(self, **_) -> None:
        """Another part committed a snapshot: the kept baseline is no longer the newest; read it ahead."""
        if threading.get_ident() != self.worker_ident:   # (our own captures announce themselves too)
            with self.cond:
                self.prime_wanted = True
                self.cond.notify_all()

    def loop(self) -> None:
        self.worker_ident = threading.get_ident()
        while True:
            with self.cond:
                while not self.stopping:
                    wait = self.queue.due_in(self.clock())
                    if wait == 0 or self.prime_wanted:
                        break
                    self.cond.wait(wait)
                if self.stopping:
                    return
                if wait != 0:
                    self.prime_wanted = False
                    paths = None
                else:
                    oldest = self.queue.oldest_age(self.clock())
                    paths = self.queue.take()
            if paths is None:
                self.prime()
            else:
                self.capture(paths, oldest)

    def prime(self) -> None:
        if self.repo is None:
            self.repo = Repository(self.ctx.paths.snapshots)
        try:
            baseline = prepare_baseline(self.repo) if self.ctx.paths.snapshots.exists() else None
        except (GuardianError, OSError) as exc:   # the capture reads it itself then
            self.ctx.log.warning("capture_prime_failed", error=getattr(exc, "message", str(exc)))
            return
        if baseline is not None:
            self.baseline = baseline

    def capture(self, paths: set[str], oldest: float | None, retry: bool = True) -> None:
        ctx = self.ctx
        if self.hold_while_store_gone(paths, retry):
            return
        held = written_among(ctx.paths.store, paths)
        if held:
            with self.cond:
                self.held = held
                self.queue.add(held, self.clock())   # asked about again after the quiet time
            paths = paths - held
            if not paths:
                return
        elif self.held:
            with self.cond:
                self.held = set()
        if self.repo is None:
            self.repo = Repository(ctx.paths.snapshots)
        baseline, self.baseline = self.baseline, None   # spent by the take (its rows are updated in place)
        try:
            result = take_snapshot(ctx.paths, ctx.config.compress_flag, changed=paths, baseline=baseline,
                                   repo=self.repo)
        except (GuardianError, OSError) as exc:
            self.failures += 1
            message = getattr(exc, "message", str(exc))
            ctx.log.error("capture_failed", error=message, paths=len(paths))
            if self.failures == 1 or self.failures % 30 == 0:
                ctx.alerter.send(alerts.SNAPSHOT_FAILED, error=message, hint=getattr(exc, "hint", ""))
            if retry:
                self.retry_later(paths)
            return
        self.failures = 0
        self.captures += 1
        self.baseline = result.baseline
        self.last = {"id": result.id, "time": ctx.wall_clock(), "paths": len(paths), "read": result.read_files,
                     "seconds": round(result.seconds, 3), "damaged": [p for p, _ in result.damaged]}
        ctx.log.info("snapshot_captured", snapshot=result.id, changes=len(paths), read=result.read_files,
                     incremental=result.incremental, seconds=round(result.seconds, 3),
                     waited=round(oldest, 3) if oldest is not None else None,
                     paths=sorted(paths)[:LOGGED_PATHS] if len(paths) <= LOGGED_PATHS else None)
        try:
            forget_and_prune_for(ctx.paths, ctx.config, collect=False)
        except (GuardianError, OSError) as exc:
            ctx.log.warning("retention_failed", error=str(exc))
        update_snapshot_metrics(ctx)
        ctx.emit(SNAPSHOT_TAKEN)  # replication pushes it, live status re-reads the snapshot headers

    def hold_while_store_gone(self, paths: set[str], retry: bool) -> bool:
        """True (the paths put back to wait) while the store folder is not there."""
        ctx = self.ctx
        if os.path.isdir(ctx.paths.store):
            if self.store_gone:
                self.store_gone = False
                ctx.log.info("store_back", store=str(ctx.paths.store))
            return False
        if not self.store_gone:
            self.store_gone = True
            hint = "contextd makes a new store on its next start; guardian restore --at latest brings this one back"
            ctx.log.warning("store_gone", store=str(ctx.paths.store), pending=len(paths), hint=hint)
            ctx.alerter.send(alerts.STORE_GONE, store=str(ctx.paths.store), hint=hint)
        if retry:
            self.retry_later(paths)
        return True

    def retry_later(self, paths: set[str]) -> None:
        """Put the paths back in the queue and wait RETRY_SECONDS (a stop wakes the wait early)."""
        with self.cond:
            self.queue.put_back(paths, self.clock())
            self.cond.wait(RETRY_SECONDS)

    def status(self) -> dict:
        with self.cond:
            pending = len(self.queue.paths)
            oldest = self.queue.oldest_age(self.clock())
        return {"capture": {"pending_changes": pending,
                            "oldest_pending_seconds": round(oldest, 3) if oldest is not None else None,
                            "captures": self.captures, "failures": self.failures, "last": self.last,
                            "store_gone": self.store_gone, "held_for_writing": sorted(self.held)}}
