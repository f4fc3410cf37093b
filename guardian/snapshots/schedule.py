"""Hourly (configurable) snapshots with APScheduler 3.x, plus event-driven ``trigger_now()``.

Missed runs (the machine slept) are coalesced into one run, never dropped (``coalesce=True``,
``misfire_grace_time=None``); one snapshot at a time (a lock: see ``_run``). After each snapshot the
optional ``after_snapshot`` callable runs (the sidecar passes retention + prune).

The job may have two instances (``max_instances=2``): a run that has released its lock and found no
request pending is still an instance until it returns, and with one instance allowed, a request
arriving in that gap moved the job to now only for APScheduler to skip it ("maximum number of
running instances reached") and put it an interval later: a change went unsnapshotted for an hour
(seen as a flaky test under load). The second instance takes the lock and runs; two instances never
snapshot at once, and one that finds the lock taken returns (the holder sees the pending request).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Callable

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from guardian.logs import get_logger

JOB_ID = "guardian-snapshot"


class SnapshotScheduler:
    def __init__(self, take_snapshot: Callable[[], object], interval_minutes: float = 60.0,
                 after_snapshot: Callable[[object], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 scheduler: BackgroundScheduler | None = None) -> None:
        self.take_snapshot = take_snapshot
        self.after_snapshot = after_snapshot
        self.on_error = on_error
        self.interval_minutes = interval_minutes
        self.scheduler = scheduler or BackgroundScheduler(timezone=timezone.utc)
        self._run_lock = threading.Lock()
        self._pending = threading.Event()
        self.runs = 0
        self.last_result = None
        self.last_error: BaseException | None = None
        self.log = get_logger("guardian.snapshots")

    @property
    def job(self):
        return self.scheduler.get_job(JOB_ID)

    def start(self, first_run: datetime | None = None) -> None:
        """Start; the first run is one interval from now unless ``first_run`` says otherwise."""
        trigger = IntervalTrigger(minutes=self.interval_minutes, timezone=timezone.utc)
        options = {"next_run_time": first_run} if first_run is not None else {}
        self.scheduler.add_job(self._run, trigger, id=JOB_ID, coalesce=True, max_instances=2,
                               misfire_grace_time=None, replace_existing=True, **options)
        if not self.scheduler.running:
            self.scheduler.start()

    def shutdown(self, wait: bool = True) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    def trigger_now(self) -> None:
        """Ask for a snapshot as soon as possible; requests during a run fold into one more run.

        The hourly job itself is moved to now (the next hourly one follows an interval after it), not
        a one-shot job added beside it: APScheduler removes a one-shot job after submitting it, and a
        request replacing it at that moment raised JobLookupError in the scheduler's own thread,
        which ends that thread and with it every later scheduled snapshot."""
        self._pending.set()
        if self._run_lock.locked():
            return  # the running snapshot sees the pending request and runs once more
        try:
            self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(timezone.utc))
        except JobLookupError:
            pass   # not started yet, or shut down: nothing to run it

    def _run(self) -> None:
        """Snapshot; while requests arrived during the run, snapshot again. A run that finds another
        one in progress returns at once: the running one sees the pending request."""
        while True:
            if not self._run_lock.acquire(blocking=False):
                return
            try:
                self._pending.clear()
                self._snapshot_once()
            finally:
                self._run_lock.release()
            if not self._pending.is_set():
                return

    def _snapshot_once(self) -> None:
        try:
            result = self.take_snapshot()
            self.runs += 1
            self.last_result, self.last_error = result, None
            if self.after_snapshot is not None:
                self.after_snapshot(result)
        except Exception as exc:  # keep the schedule alive; report and try again next time
            self.last_error = exc
            if self.on_error is not None:
                self.on_error(exc)   # the owner reports it (one event per failure)
            else:
                self.log.warning("snapshot_failed", error=str(exc))
