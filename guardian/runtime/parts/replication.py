"""The replication part: every committed snapshot goes to each configured replica, in the background.

One thread pushes (guardian.replicas.sync.replicate) after each snapshot the snapshot part commits,
and every ``replica_interval_seconds`` to catch up with snapshots taken by `guardian snapshot`. A
replica that fails is retried with capped exponential backoff (``backoff_initial`` doubling up to
``replica_backoff_max``); its first failure in a row sends ``replica_failing``, the first success
after that ``replica_recovered``. Nothing here ever blocks a snapshot or the child: the snapshot
part only notes that one was taken, and a push reads the repository without the store lock.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from guardian.errors import GuardianError
from guardian.runtime import alerts
from guardian.runtime.context import SNAPSHOT_TAKEN
from guardian.replicas.plan import replica_lag
from guardian.replicas.replica import spec_from_config
from guardian.replicas.state import load_state, state_file
from guardian.runtime.parts import ThreadedPart
from guardian.snapshots.repository import Repository


class ReplicaWorker:
    """Per-replica schedule and outcome, as the part's thread sees it."""

    def __init__(self, url: str, display: str) -> None:
        self.url, self.display = url, display
        self.next_attempt = 0.0          # monotonic time of the next push
        self.failures = 0                # consecutive
        self.last_error = ""
        self.last_success: float | None = None
        self.pushes = 0


class ReplicationPart(ThreadedPart):
    name = "replication"
    thread_name = "guardian-replication"

    def __init__(self, ctx, clock=time.monotonic) -> None:
        super().__init__(ctx)
        self.clock = clock
        self.woken = False  # a snapshot was committed since the loop last looked (under cond)
        self.workers: list[ReplicaWorker] = []

    def start(self) -> None:
        for url in self.ctx.config.replicas:
            try:
                display = spec_from_config(url, self.ctx.config).display
            except GuardianError as exc:
                self.ctx.log.error("replica_misconfigured", replica=url, error=exc.message)
                continue
            worker = ReplicaWorker(url, display)
            self.workers.append(worker)
            self.ctx.metrics.watch_replica(display, lambda w=worker: self.lag(w))
        if not self.workers:
            return
        self.ctx.on(SNAPSHOT_TAKEN, self.on_snapshot)
        self.start_thread()

    def on_snapshot(self, **_) -> None:
        with self.cond:
            self.woken = True
            self.cond.notify_all()

    # ---- the loop -------------------------------------------------------------------------------
    def loop(self) -> None:
        interval = self.ctx.config.replica_interval_seconds
        while True:
            with self.cond:
                if self.stopping:
                    return
                woken, self.woken = self.woken, False
            for worker in self.workers:
                due = self.clock() >= worker.next_attempt
                if self.stopping:
                    break
                if due or (woken and worker.failures == 0):
                    self.push(worker, interval)
            wait = min((w.next_attempt for w in self.workers), default=self.clock() + interval) - self.clock()
            with self.cond:
                if not self.woken and not self.stopping:
                    self.cond.wait(max(0.05, min(wait, interval)))

    def push(self, worker: ReplicaWorker, interval: float) -> None:
        # only a runtime with replicas pays for the push code: ~120 ms of imports (boto3 waits for an s3:// one)
        from guardian.replicas.sync import ReplicaBusy, replicate

        ctx = self.ctx
        try:
            result = replicate(ctx.config, ctx.paths, worker.url, lock_timeout=1.0,
                               cancelled=lambda: self.stopping)
        except ReplicaBusy:  # `guardian replicate` is pushing: try again later, not a failure
            worker.next_attempt = self.clock() + interval
            return
        except GuardianError as exc:
            self.failed(worker, exc.one_line(), getattr(exc, "bytes_sent", 0))
            return
        except Exception as exc:  # a bug must not end replication: log, back off, retry
            self.failed(worker, f"internal error {type(exc).__name__}: {exc}")
            return
        worker.pushes += 1
        worker.last_success = time.time()
        worker.next_attempt = self.clock() + interval
        ctx.metrics.replica_pushed(worker.display, result.bytes_sent, worker.last_success)
        if result.uploaded or result.forgotten:
            ctx.log.info("replica_pushed", replica=worker.display, snapshots=len(result.uploaded),
                         objects=result.objects_sent, bytes=result.bytes_sent, seconds=result.seconds)
        if result.mend.damaged:
            ctx.log.warning("replica_damage_found", replica=worker.display, damaged=sorted(result.mend.damaged),
                            mended=len(result.mend.mended), not_mendable=sorted(result.mend.unmendable))
        if worker.failures:
            ctx.alerter.send(alerts.REPLICA_RECOVERED, replica=worker.display, failures=worker.failures)
        worker.failures, worker.last_error = 0, ""

    def failed(self, worker: ReplicaWorker, message: str, bytes_sent: int = 0) -> None:
        ctx = self.ctx
        worker.failures += 1
        worker.last_error = message
        config = ctx.config
        delay = min(config.backoff_initial * 2 ** (worker.failures - 1), config.replica_backoff_max)
        worker.next_attempt = self.clock() + delay
        ctx.metrics.replica_failed(worker.display, bytes_sent)
        ctx.log.warning("replica_push_failed", replica=worker.display, error=message,
                        failures=worker.failures, retry_in=round(delay, 1))
        if worker.failures == 1:
            ctx.alerter.send(alerts.REPLICA_FAILING, replica=worker.display, error=message)

    # ---- what it reports ------------------------------------------------------------------------
    def lag(self, worker: ReplicaWorker) -> float:
        try:
            newest = load_state(state_file(self.ctx.paths.root, worker.display)).newest_remote
            local = Repository(self.ctx.paths.snapshots).list_ids()
            return replica_lag(local, [newest] if newest else [], datetime.now(timezone.utc))
        except Exception:  # a view: never fail a scrape
            return 0.0

    def status(self) -> dict:
        if not self.workers:
            return {}
        return {"replication": [{"replica": w.display, "failures": w.failures, "last_error": w.last_error,
                                 "pushes": w.pushes, "lag_seconds": round(self.lag(w), 1)}
                                for w in self.workers]}
