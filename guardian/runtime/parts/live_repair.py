"""Live repair: damage that settles while guardian runs is alerted and repaired from the newest good
snapshot copy, without waiting for the next launch - but never a file a writer is still writing
(the health part only reports settled paths, and ``repair.live`` re-checks each one just before
its rename), and never anything but the judged paths.

A file a process has held open for writing past ``held_repair_seconds`` that chromem would refuse
meanwhile (a writer paused between its truncate and its write) is reported as *held*: it is made
loadable the same way, with no alert (it is not damage), and the old file is kept
(``repair.held``). This part then looks at the kept files every second: once their writer has
closed them, a writer's update is put back where chromem loads it (announced as ``repaired``, so
the next snapshot has it), and anything else goes to the quarantine, complete.

Alerts: ``corruption_found`` (per damaged path), then ``repair_done``, or ``repair_impossible`` when
settled damage could not be repaired. A repair that failed (a full disk, say) is tried again every
``RETRY_SECONDS`` while the path is still damaged, with no alert again until it succeeds. A store
that is unloadable for a moment because of a file not settled yet (a write in progress) is no
alert: the health part's verdict shows it, and the file is judged once it settles.
"""

from __future__ import annotations

import time

from guardian.errors import GuardianError
from guardian.local.lock import store_lock
from guardian.repair.held import PUT_BACK, HeldWrites
from guardian.repair.live import repair_judged
from guardian.runtime import alerts
from guardian.runtime.context import DAMAGE_FOUND, LIVE_REPAIR, REPAIRED
from guardian.runtime.parts import ThreadedPart
from guardian.runtime.settle import RECHECK_SECONDS
from guardian.runtime.status import iso_utc
from guardian.store.judge import judge_path

RETRY_SECONDS = 10.0


class LiveRepairPart(ThreadedPart):
    name = "live_repair"
    thread_name = "guardian-live-repair"
    join_seconds = 60.0  # a repair under way finishes first

    def __init__(self, ctx, clock=time.monotonic) -> None:
        super().__init__(ctx)
        self.clock = clock
        self.retrying: dict[str, float] = {}   # settled damage whose repair failed -> when to try again
        self.pending: list = []  # damages reported and not yet taken by the worker (under cond)
        self.repairs = 0
        self.put_back = 0        # writers' updates put back after a held file was repaired
        self.last: dict | None = None
        self.keeper = HeldWrites(ctx.paths)
        self.keeping = False     # kept files wait for their writers (looked at every RECHECK_SECONDS)

    def start(self) -> None:
        self.ctx.on(DAMAGE_FOUND, self.on_damage)
        self.ctx.provide(LIVE_REPAIR, self.repair)
        self.keeping = self.keeper.pending()   # kept by the pre-flight, or by a guardian killed meanwhile
        self.start_thread()

    def on_damage(self, damages) -> None:
        with self.cond:
            self.pending.extend(damages)
            self.cond.notify_all()

    def loop(self) -> None:
        """Repair what was reported (several reports waiting make one repair), and settle the kept
        files whose writers are done. Damage reported before a stop is still repaired."""
        while True:
            with self.cond:
                if not self.pending and not self.stopping:
                    self.cond.wait(self.idle_wait())
                if self.stopping and not self.pending:
                    return
                damages, self.pending = self.pending, []
            for step in (lambda: damages and self.repair(damages), self.retry_failed,
                         lambda: self.keeping and self.settle_kept()):
                try:
                    step()
                except Exception as exc:  # keep guarding
                    self.ctx.log.error("live_repair_failed", error=f"{type(exc).__name__}: {exc}")

    def idle_wait(self) -> float | None:
        """How long the worker may sleep: until the next retry, or the next look at the kept files."""
        waits = [at - self.clock() for at in self.retrying.values()]
        if self.keeping:
            waits.append(RECHECK_SECONDS)
        return max(0.05, min(waits)) if waits else None

    def retry_failed(self) -> None:
        """Settled damage whose repair failed, judged again and repaired if it still needs it."""
        now = self.clock()
        due = sorted(rel for rel, at in self.retrying.items() if at <= now)
        damages = []
        for rel in due:
            damage = judge_path(self.ctx.config.store_path, rel)
            if damage is None:
                del self.retrying[rel]   # fixed meanwhile (a writer, a restore)
                self.ctx.log.info("live_repair_retry_not_needed", path=rel, why="the path is fine now")
            else:
                damages.append(damage)
        if damages:
            self.ctx.log.info("live_repair_retried", paths=[d.path for d in damages])
            self.repair(damages, retry=True)

    def repair(self, damages, retry: bool = False) -> dict:
        """Repair ``damages``; ``retry``: a repair that failed before (no alert again but its success)."""
        ctx = self.ctx
        for damage in damages:
            if not damage.held and not retry:
                ctx.alerter.send(alerts.CORRUPTION_FOUND, path=damage.path, kind=damage.kind, reason=damage.reason,
                                 live=True)
        try:
            with ctx.repair_lock:
                result = repair_judged(ctx.config, ctx.paths, damages, keeper=self.keeper)
        except (GuardianError, OSError) as exc:
            message = exc.message if isinstance(exc, GuardianError) else f"{exc.strerror or exc}"
            ctx.log.error("live_repair_failed", error=message, retry_in=RETRY_SECONDS)
            if not retry:
                ctx.alerter.send(alerts.REPAIR_IMPOSSIBLE, error=message, paths=[d.path for d in damages], live=True)
            self.retry_later([d.path for d in damages if not d.held])
            return {"ok": False, "error": message}
        self.keeping = self.keeper.pending()
        for applied in result.repaired:
            self.retrying.pop(applied.action.path, None)
        self.retry_later([a.action.path for a in result.failed])
        self.report(result, alert_failures=not retry)
        return result.to_dict()

    def retry_later(self, rels: list[str]) -> None:
        for rel in rels:
            self.retrying[rel] = self.clock() + RETRY_SECONDS

    def report(self, result, alert_failures: bool = True) -> None:
        ctx = self.ctx
        done = [a.to_dict() for a in result.repaired]
        held = {d.path for d in result.damages if d.held}
        ctx.publish_scan(result.scan)
        self.last = {"time": iso_utc(ctx.wall_clock()), **result.to_dict()}
        ctx.last_repair = {"time": self.last["time"], "summary": _summary(result), "live": True,
                           "loadable_before": False, "loadable_after": result.loadable, "actions": len(done)}
        if done:
            self.repairs += len(done)
            ctx.counters.repairs += len(done)
            ctx.metrics.inc_repairs(len(done))
            ctx.log.warning("live_repaired", actions=done, loadable=result.loadable)
            damaged = [a["path"] for a in done if a["path"] not in held]
            if damaged:
                ctx.alerter.send(alerts.REPAIR_DONE, actions=len(damaged), paths=damaged, loadable=result.loadable,
                                 live=True)
            ctx.emit(REPAIRED, actions=done)
        for path in result.changed_meanwhile:
            ctx.log.info("live_repair_deferred", path=path, why="changed after it was judged; judged again later")
        left = [p for p in result.unresolved + [a.action.path for a in result.failed] if p not in held]
        if left:
            ctx.log.error("live_repair_impossible", paths=left, error=getattr(result.scan, "error", None),
                          failed=[a.to_dict() for a in result.failed])
            if alert_failures:
                ctx.alerter.send(alerts.REPAIR_IMPOSSIBLE, paths=left, error=getattr(result.scan, "error", None),
                                 live=True)
        elif result.loadable is False:
            ctx.log.info("store_unloadable_meanwhile", error=getattr(result.scan, "error", None),
                         note="a file not settled yet (a write in progress); it is judged once it settles")

    def settle_kept(self) -> None:
        """The kept files whose writers are done: a writer's update is put back (and announced, so
        the index re-reads it and a snapshot takes it), anything else is quarantined."""
        ctx = self.ctx
        if not self.keeper.any_settleable():
            self.keeping = self.keeper.pending()
            return
        with ctx.repair_lock, store_lock(ctx.paths.lock_file, timeout=30.0):
            outcomes = self.keeper.settle_all()
        self.keeping = self.keeper.pending()
        back = [o for o in outcomes if o.what == PUT_BACK]
        if back:
            self.put_back += len(back)
            ctx.emit(REPAIRED, actions=[{"action": "writer_update_put_back", "path": o.record.rel, "ok": True,
                                         "detail": o.reason} for o in back])

    def status(self) -> dict:
        return {"live_repair": {"repairs": self.repairs, "last": self.last, "writers_put_back": self.put_back,
                                "retrying": sorted(self.retrying),
                                "kept_for_writers": len(self.keeper.records()) if self.keeping else 0}}


def _summary(result) -> str:
    state = "loadable" if result.loadable else "STILL UNLOADABLE"
    return (f"live repair of {len(result.damages)} damaged path(s): {len(result.repaired)} repaired, "
            f"{len(result.changed_meanwhile)} changed meanwhile (left); now {state}")
