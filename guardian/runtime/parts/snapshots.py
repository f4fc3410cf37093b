"""The snapshot part: the hourly schedule, snapshots on request, retention after each one."""

from __future__ import annotations

from guardian.errors import GuardianError
from guardian.local.memory import release_free_memory
from guardian.runtime import alerts
from guardian.runtime.context import REPAIRED, SNAPSHOT, SNAPSHOT_TAKEN, SNAPSHOT_WANTED
from guardian.runtime.metrics_feed import update_snapshot_metrics
from guardian.runtime.parts import BasePart
from guardian.snapshots.prune import forget_and_prune_for
from guardian.snapshots.schedule import SnapshotScheduler
from guardian.snapshots.take import take_snapshot


class SnapshotPart(BasePart):
    name = "snapshots"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.scheduler: SnapshotScheduler | None = None

    def start(self) -> None:
        ctx = self.ctx
        # take() reports its own failures: the scheduler must not log a second event for one failure
        self.scheduler = SnapshotScheduler(self.take, ctx.config.snapshot_interval_minutes,
                                           on_error=lambda exc: None)
        self.scheduler.start()
        self.scheduler.trigger_now()
        ctx.provide(SNAPSHOT, self.take)
        ctx.on(SNAPSHOT_WANTED, self.scheduler.trigger_now)
        ctx.on(REPAIRED, lambda actions: self.scheduler.trigger_now())
        update_snapshot_metrics(ctx)

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()

    def take(self):
        ctx = self.ctx
        if not ctx.paths.store.exists():  # no store yet (contextd creates it): nothing to keep, no failure
            ctx.log.info("snapshot_skipped", reason="no store yet", store=str(ctx.paths.store))
            return None
        try:
            result = take_snapshot(ctx.paths, ctx.config.compress_flag)
        except Exception as exc:  # one snapshot_failed event (and alert) per failure, scheduled or asked for
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            ctx.counters.snapshots_failed += 1
            ctx.log.error("snapshot_failed", error=message)
            ctx.alerter.send(alerts.SNAPSHOT_FAILED, error=message, hint=getattr(exc, "hint", ""))
            raise
        self.apply_retention()
        release_free_memory()  # a snapshot of a large store frees most of what it allocated
        update_snapshot_metrics(ctx)
        ctx.emit(SNAPSHOT_TAKEN)
        return result

    def apply_retention(self) -> None:
        try:
            forget_and_prune_for(self.ctx.paths, self.ctx.config)
        except (GuardianError, OSError) as exc:
            self.ctx.log.warning("retention_failed", error=str(exc))
