"""Store health, always true: chromem's verdict on the store as it is now (`run` and `serve` alike).

Every changed path is watched until it settles (``runtime.settle``: quiet and closed), then judged
on its own (``store.judge.judge_path``: a stat and one decode). New damage is announced
(``damage_found``, which the live repair part acts on in `guardian run`) and the store is scanned
again (cached: only changed files are decoded), so /readyz, ``guardian_store_loadable``,
``guardian_collections{status}`` and /v1/status agree. Writes that do no harm cost a judgment,
not a scan; after harmless writes the store is rescanned at most every ``RESCAN_SECONDS``.
"""

from __future__ import annotations

import os
import stat
import threading
import time

from guardian.errors import GuardianError
from guardian.runtime.context import DAMAGE_FOUND, REPAIRED, STORE_CHANGED, VERDICT
from guardian.runtime.metrics_feed import update_store_metrics
from guardian.runtime.parts import ThreadedPart
from guardian.runtime.settle import SettleTracker
from guardian.runtime.watcher import CREATED, DELETED
from guardian.store.judge import judge_path
from guardian.store.scan import scan_store

RESCAN_SECONDS = 30.0
IDLE_WAKE = 1.0


def _is_regular(path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class StoreHealthPart(ThreadedPart):
    name = "health"
    thread_name = "guardian-health"

    def __init__(self, ctx, clock=time.monotonic) -> None:
        super().__init__(ctx)
        self.clock = clock
        self.tracker = SettleTracker(ctx.config.settle_seconds)
        self.damaged: dict[str, object] = {}   # rel -> judge.Damage, still there when last judged
        self.dirty = False
        self.last_scan_at = 0.0
        self.scan_lock = threading.Lock()

    def start(self) -> None:
        ctx = self.ctx
        ctx.on(STORE_CHANGED, self.on_changes)
        ctx.on(REPAIRED, lambda actions: self.mark_dirty())
        ctx.provide(VERDICT, self.verdict)
        if ctx.last_scan is None:
            self.rescan()
        else:
            self.last_scan_at = self.clock()
        self.start_thread()

    # ---- intake (observer thread) ------------------------------------------------------------

    def on_changes(self, events) -> None:
        root = self.ctx.config.store_path
        with self.cond:
            now = self.clock()
            for event in events:
                if len(event.rel.parts) <= 2:
                    # created: open for writing only if it is a regular file (mkfifo, mkdir, ln -s open nothing)
                    closed = event.closed or (event.kind == CREATED and not _is_regular(root / event.rel))
                    self.tracker.note(str(event.rel), now, closed=closed, deleted=event.kind == DELETED,
                                      is_dir=event.is_dir and len(event.rel.parts) == 1)
            self.dirty = True
            self.cond.notify_all()

    def mark_dirty(self) -> None:
        with self.cond:
            self.dirty = True
            self.last_scan_at = 0.0  # rescan at once
            self.cond.notify_all()

    # ---- the worker ----------------------------------------------------------------------------

    def loop(self) -> None:
        while True:
            with self.cond:
                if self.stopping:
                    return
                now = self.clock()
                settled = self.tracker.take_settled(now)
                if not settled and not self.rescan_due(now):
                    wait = self.tracker.next_due(now)
                    self.cond.wait(IDLE_WAKE if wait is None else min(max(wait, 0.01), IDLE_WAKE))
                    continue
            try:
                self.judge(settled)
            except Exception as exc:  # the health view must outlive any surprise
                self.ctx.log.error("health_check_failed", error=f"{type(exc).__name__}: {exc}")

    def rescan_due(self, now: float) -> bool:
        """Harmless writes refresh the counts at most every RESCAN_SECONDS (a scan of a 100k store costs
        ~0.3 s); damage found or healed rescans at once (see :meth:`judge`), so does a repair."""
        return self.dirty and now - self.last_scan_at >= RESCAN_SECONDS

    def judge(self, settled: list[str]) -> None:
        root = self.ctx.config.store_path
        found, healed = [], []
        for rel in settled:
            damage = judge_path(root, rel)
            if damage is not None:
                if getattr(self.damaged.get(rel), "key", object()) != damage.key:
                    found.append(damage)
                self.damaged[rel] = damage
            elif self.damaged.pop(rel, None) is not None:
                healed.append(rel)
        if found or healed or self.rescan_due(self.clock()):
            self.rescan()
        for damage in found:
            self.ctx.log.warning("damage_settled", path=damage.path, kind=damage.kind, reason=damage.reason)
        if found:
            self.ctx.emit(DAMAGE_FOUND, damages=found)

    def rescan(self):
        """Scan the store now (cached) and publish the verdict; returns the scan (None on failure)."""
        ctx = self.ctx
        with self.scan_lock:
            with self.cond:
                self.dirty = False
                self.last_scan_at = self.clock()
            try:
                scan = scan_store(ctx.config.store_path, ctx.config.compress_flag, cache_dir=ctx.paths.cache)
            except (GuardianError, OSError) as exc:
                ctx.log.warning("health_scan_failed", error=str(exc))
                return None
            ctx.last_scan = scan
            update_store_metrics(ctx, scan)
            return scan

    # ---- what it says ----------------------------------------------------------------------------

    def verdict(self) -> dict:
        """For `guardian exec` (over the control socket): the verdict now, rescanned if stale."""
        with self.cond:
            stale = self.dirty
            unsettled = len(self.tracker.watched)
        scan = self.rescan() if stale or self.ctx.last_scan is None else self.ctx.last_scan
        return {"loadable": bool(scan is not None and scan.loadable),
                "error": getattr(scan, "error", None), "unsettled": unsettled,
                "damaged": [d.to_dict() for d in self.damaged.values()]}

    def status(self) -> dict:
        with self.cond:
            unsettled = len(self.tracker.watched)
        return {"health": {"unsettled": unsettled, "damaged": [d.to_dict() for d in self.damaged.values()]}}
