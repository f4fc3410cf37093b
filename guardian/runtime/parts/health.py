"""Store health, always true: chromem's verdict on the store as it is now (`run` and `serve` alike).

Every changed path is watched until it settles (``runtime.settle``: quiet, and no process holds it
open for writing - the operating system is asked, ``local.holders``), then judged on its own
(``store.judge.judge_path``: a stat and one decode). New damage is announced (``damage_found``,
which the live repair part acts on in `guardian run`). A file a process still holds for writing is
not damage; one held past ``held_repair_seconds`` that chromem would refuse meanwhile (a writer
paused between its truncate and its write) is announced once as *held* damage: the live repair may
make it loadable, keeping the holder's later bytes (``repair.held``). The verdict on the whole
store is a :class:`~guardian.store.live_scan.LiveScan`, read once and then told each settled path
(a stat and a decode per changed file, never a walk of the store), and published as the runtime's
one scan (``ctx.publish_scan``), so /readyz, ``guardian_store_loadable``, ``guardian_documents``,
``guardian_collections{status}`` and /v1/status follow every settled write within a second or two.
The store is read whole again after a repair and, as a safety net for lost events, every
``FULL_RESCAN_SECONDS`` while it changes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from guardian.errors import GuardianError
from guardian.local.holders import written_among
from guardian.repair.preflight import ACTIONABLE
from guardian.runtime.context import DAMAGE_FOUND, REPAIRED, STORE_CHANGED, VERDICT
from guardian.runtime.parts import ThreadedPart
from guardian.runtime.settle import SettleTracker
from guardian.store.judge import judge_path
from guardian.store.live_scan import LiveScan

FULL_RESCAN_SECONDS = 600.0
RETRY_SECONDS = 2.0
IDLE_WAKE = 1.0


class StoreHealthPart(ThreadedPart):
    name = "health"
    thread_name = "guardian-health"

    def __init__(self, ctx, clock=time.monotonic) -> None:
        super().__init__(ctx)
        self.clock = clock
        self.tracker = SettleTracker(ctx.config.settle_seconds, ctx.config.held_repair_seconds)
        self.damaged: dict[str, object] = {}   # rel -> judge.Damage, still there when last judged
        self.dirty = False
        self.last_scan_at = 0.0
        self.scan_lock = threading.Lock()
        self.live: LiveScan | None = None   # built by the first rescan (in the worker, not at start-up)
        self.full_wanted = True             # read the whole store at the next chance (start-up, repairs)
        self.full_reads = 0                 # how often the whole store was read (tests, debugging)

    def start(self) -> None:
        ctx = self.ctx
        ctx.on(STORE_CHANGED, self.on_changes)
        ctx.on(REPAIRED, lambda actions: self.mark_dirty())
        ctx.provide(VERDICT, self.verdict)
        if ctx.last_scan is None:
            self.rescan()
        # else the pre-flight's scan stands until the live scan is read (in the worker, full_wanted)
        self.start_thread()

    # ---- intake (observer thread) ------------------------------------------------------------

    def on_changes(self, events) -> None:
        with self.cond:
            now = self.clock()
            for event in events:
                if len(event.rel.parts) <= 2:
                    self.tracker.note(str(event.rel), now)
                else:   # deeper than chromem reads: its collection folder's sub-folder is walked again
                    self.tracker.note("/".join(event.rel.parts[:2]), now)   # (hidden documents)
            self.dirty = True
            self.cond.notify_all()

    def mark_dirty(self) -> None:
        with self.cond:
            self.dirty = True
            self.full_wanted = True
            self.cond.notify_all()

    # ---- the worker ----------------------------------------------------------------------------

    def loop(self) -> None:
        while True:
            with self.cond:
                if self.stopping:
                    return
                now = self.clock()
                due = self.tracker.due(now)
                if not due and not self.rescan_due(now):
                    wait = self.tracker.next_due(now)
                    self.cond.wait(IDLE_WAKE if wait is None else min(max(wait, 0.01), IDLE_WAKE))
                    continue
            try:
                settling = self.settle(due, now)
                self.judge(settling.settled)
                self.judge_held(settling.held_long)
            except Exception as exc:  # the health view must outlive any surprise
                self.ctx.log.error("health_check_failed", error=f"{type(exc).__name__}: {exc}")

    def settle(self, due: list[str], now: float):
        """Ask the OS which due paths a process holds for writing (outside the lock: I/O), then let
        the tracker decide what settled."""
        held = written_among(self.ctx.config.store_path, due)
        with self.cond:
            return self.tracker.settle(now, due, held)

    def rescan_due(self, now: float) -> bool:
        """A whole read: at once after a repair (and before the first update), else at most every
        FULL_RESCAN_SECONDS while the store changes (settled paths update the live scan meanwhile)."""
        if self.live is None:   # not read yet, or the last read failed: try again every few seconds
            return self.full_wanted or now - self.last_scan_at >= RETRY_SECONDS
        return self.full_wanted or (self.dirty and now - self.last_scan_at >= FULL_RESCAN_SECONDS)

    def judge(self, settled: list[str]) -> None:
        root = self.ctx.config.store_path
        found = []
        for rel in settled:
            damage = judge_path(root, rel)
            if damage is not None:
                if getattr(self.damaged.get(rel), "key", object()) != damage.key:
                    found.append(damage)
                self.damaged[rel] = damage
            else:
                self.damaged.pop(rel, None)
        if self.rescan_due(self.clock()):
            self.rescan()
        elif settled:
            self.update(settled)
        self.ctx.metrics.set_unrepaired(len(self.damaged))   # what `guardian status` calls unrepaired
        for damage in found:
            self.ctx.log.warning("damage_settled", path=damage.path, kind=damage.kind, reason=damage.reason)
        if found:
            self.ctx.emit(DAMAGE_FOUND, damages=found)

    def judge_held(self, held_long: list[str]) -> None:
        """Files a process has held for writing past the grace: those chromem would refuse now (a
        writer paused between its truncate and its write) are announced once, as held damage."""
        found = []
        for rel in held_long:
            damage = judge_path(self.ctx.config.store_path, rel)
            if damage is not None:
                found.append(replace(damage, held=True))
        for damage in found:
            self.ctx.log.info("held_file_unloadable", path=damage.path, reason=damage.reason,
                              note="a process holds it open for writing (paused mid-write?); not damage: "
                                   "made loadable, and the writer's bytes are kept for when it closes it")
        if found:
            self.ctx.emit(DAMAGE_FOUND, damages=found)

    def rescan(self):
        """Read the whole store now (cached decodes) and publish the verdict; the scan (None on failure)."""
        ctx = self.ctx
        with self.scan_lock:
            with self.cond:
                self.dirty = self.full_wanted = False
                self.last_scan_at = self.clock()
            live = LiveScan(ctx.config.store_path, ctx.config.compress_flag, cache_dir=ctx.paths.cache)
            try:
                scan = live.build()
            except (GuardianError, OSError) as exc:
                ctx.log.warning("health_scan_failed", error=str(exc))
                return None
            self.live = live
            self.full_reads += 1
            ctx.publish_scan(scan)
        self.watch_problems(scan)
        return scan

    def watch_problems(self, scan) -> None:
        """Damage a whole read finds that no event announced - left by a pre-flight that could not
        repair it (a full disk, a file then being written), or made while guardian was down - is
        watched like a change: judged once settled, and repaired by the live repair part."""
        found = {p.path for p in scan.problems if p.kind in ACTIONABLE}
        with self.cond:
            now = self.clock()
            for rel in sorted(found - set(self.tracker.watched) - set(self.damaged)):
                self.tracker.note(rel, now)
            self.cond.notify_all()

    def update(self, paths: list[str]):
        """Tell the live scan these settled paths changed and publish the verdict (a stat and a decode
        per path: the cost of a write is the write, not the store)."""
        with self.scan_lock:
            try:
                scan = self.live.update(paths)
            except (GuardianError, OSError) as exc:
                self.ctx.log.warning("health_scan_failed", error=str(exc))
                self.mark_dirty()
                return None
            self.ctx.publish_scan(scan)
            return scan

    # ---- what it says ----------------------------------------------------------------------------

    def verdict(self) -> dict:
        """For `guardian exec` (over the control socket): the verdict as of the last settled change (kept
        current by :meth:`update`: no walk of the store here), and how many paths have not settled."""
        with self.cond:
            unsettled, held = len(self.tracker.watched), self.tracker.held()
        scan = self.ctx.last_scan if self.ctx.last_scan is not None else self.rescan()
        return {"loadable": bool(scan is not None and scan.loadable),
                "error": getattr(scan, "error", None), "unsettled": unsettled, "held": held,
                "damaged": [d.to_dict() for d in self.damaged.values()]}

    def status(self) -> dict:
        with self.cond:
            unsettled, held = len(self.tracker.watched), self.tracker.held()
        return {"health": {"unsettled": unsettled, "held": held,
                           "damaged": [d.to_dict() for d in self.damaged.values()]}}
