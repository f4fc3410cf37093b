"""Live repair: damage that settles while guardian runs is alerted and repaired from the newest good
snapshot copy, without waiting for the next launch - but never a file a writer is still writing
(the health part only reports settled paths, and ``repair.live`` re-checks each one just before
its rename), and never anything but the judged paths.

Alerts: ``corruption_found`` (per damaged path), then ``repair_done`` or ``repair_impossible``.
"""

from __future__ import annotations

from guardian.errors import GuardianError
from guardian.repair.live import repair_judged
from guardian.runtime import alerts
from guardian.runtime.context import DAMAGE_FOUND, LIVE_REPAIR, REPAIRED
from guardian.runtime.parts import ThreadedPart
from guardian.runtime.status import iso_utc


class LiveRepairPart(ThreadedPart):
    name = "live_repair"
    thread_name = "guardian-live-repair"
    join_seconds = 60.0  # a repair under way finishes first

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.pending: list = []  # damages reported and not yet taken by the worker (under cond)
        self.repairs = 0
        self.last: dict | None = None

    def start(self) -> None:
        self.ctx.on(DAMAGE_FOUND, self.on_damage)
        self.ctx.provide(LIVE_REPAIR, self.repair)
        self.start_thread()

    def on_damage(self, damages) -> None:
        with self.cond:
            self.pending.extend(damages)
            self.cond.notify_all()

    def loop(self) -> None:
        """Repair what was reported; several reports waiting make one repair. Damage reported
        before a stop is still repaired."""
        while True:
            with self.cond:
                while not self.pending and not self.stopping:
                    self.cond.wait()
                if not self.pending:
                    return
                damages, self.pending = self.pending, []
            try:
                self.repair(damages)
            except Exception as exc:  # keep guarding
                self.ctx.log.error("live_repair_failed", error=f"{type(exc).__name__}: {exc}")

    def repair(self, damages) -> dict:
        ctx = self.ctx
        for damage in damages:
            ctx.alerter.send(alerts.CORRUPTION_FOUND, path=damage.path, kind=damage.kind, reason=damage.reason,
                             live=True)
        try:
            with ctx.repair_lock:
                result = repair_judged(ctx.config, ctx.paths, damages)
        except GuardianError as exc:
            ctx.log.error("live_repair_failed", error=exc.message, hint=exc.hint)
            ctx.alerter.send(alerts.REPAIR_IMPOSSIBLE, error=exc.message, paths=[d.path for d in damages], live=True)
            return {"ok": False, "error": exc.message}
        self.report(result)
        return result.to_dict()

    def report(self, result) -> None:
        ctx = self.ctx
        done = [a.to_dict() for a in result.repaired]
        ctx.publish_scan(result.scan)
        self.last = {"time": iso_utc(ctx.wall_clock()), **result.to_dict()}
        ctx.last_repair = {"time": self.last["time"], "summary": _summary(result), "live": True,
                           "loadable_before": False, "loadable_after": result.loadable, "actions": len(done)}
        if done:
            self.repairs += len(done)
            ctx.counters.repairs += len(done)
            ctx.metrics.inc_repairs(len(done))
            ctx.log.warning("live_repaired", actions=done, loadable=result.loadable)
            ctx.alerter.send(alerts.REPAIR_DONE, actions=len(done), paths=[a["path"] for a in done],
                             loadable=result.loadable, live=True)
            ctx.emit(REPAIRED, actions=done)
        for path in result.changed_meanwhile:
            ctx.log.info("live_repair_deferred", path=path, why="changed after it was judged; judged again later")
        left = result.unresolved + [a.action.path for a in result.failed]
        if left or result.loadable is False:
            ctx.log.error("live_repair_impossible", paths=left, error=getattr(result.scan, "error", None))
            ctx.alerter.send(alerts.REPAIR_IMPOSSIBLE, paths=left, error=getattr(result.scan, "error", None),
                             live=True)

    def status(self) -> dict:
        return {"live_repair": {"repairs": self.repairs, "last": self.last}}


def _summary(result) -> str:
    state = "loadable" if result.loadable else "STILL UNLOADABLE"
    return (f"live repair of {len(result.damages)} damaged path(s): {len(result.repaired)} repaired, "
            f"{len(result.changed_meanwhile)} changed meanwhile (left); now {state}")
