import threading
import time
from datetime import datetime, timedelta, timezone

from guardian.snapshots.schedule import SnapshotScheduler
from tests.waiting import wait_until


class Recorder:
    def __init__(self, block: threading.Event | None = None):
        self.calls = 0
        self.done = threading.Event()
        self.started = threading.Event()
        self.block = block

    def __call__(self):
        self.calls += 1
        self.started.set()
        if self.block is not None:
            self.block.wait(5)
        self.done.set()
        return self.calls




def test_job_is_configured_to_coalesce_and_not_overlap():
    sched = SnapshotScheduler(Recorder(), interval_minutes=15)
    sched.start()
    try:
        job = sched.job
        assert job.coalesce is True and job.max_instances == 2 and job.misfire_grace_time is None
        assert job.trigger.interval == timedelta(minutes=15)
        assert job.next_run_time > datetime.now(timezone.utc) + timedelta(minutes=14)
    finally:
        sched.shutdown()


def test_missed_runs_after_sleep_run_once_not_dropped():
    recorder = Recorder()
    after = []
    sched = SnapshotScheduler(recorder, interval_minutes=60, after_snapshot=after.append)
    sched.start(first_run=datetime.now(timezone.utc) - timedelta(hours=3, minutes=5))
    try:
        assert recorder.done.wait(30)
        time.sleep(0.2)
        assert recorder.calls == 1 and after == [1]
        assert sched.job.next_run_time > datetime.now(timezone.utc)
    finally:
        sched.shutdown()


def test_trigger_now_and_requests_during_a_run_fold_into_one_more():
    release = threading.Event()
    recorder = Recorder(block=release)
    sched = SnapshotScheduler(recorder, interval_minutes=60)
    sched.start()
    try:
        sched.trigger_now()
        assert recorder.started.wait(30)
        for _ in range(5):
            sched.trigger_now()   # arrive while the first run is busy
        release.set()
        assert wait_until(lambda: recorder.calls == 2)
        time.sleep(0.2)
        assert recorder.calls == 2
    finally:
        sched.shutdown()


def test_a_failing_snapshot_is_reported_and_the_schedule_lives_on():
    errors = []
    attempts = []

    def failing():
        attempts.append(1)
        raise OSError("disk full")
    sched = SnapshotScheduler(failing, interval_minutes=60, on_error=errors.append)
    sched.start()
    try:
        sched.trigger_now()
        assert wait_until(lambda: errors)
        assert isinstance(sched.last_error, OSError) and sched.job is not None
        sched.trigger_now()
        assert wait_until(lambda: len(attempts) == 2)
    finally:
        sched.shutdown()


def test_requests_from_many_threads_never_end_the_scheduler_thread():
    """Each request moves the hourly job to now (no one-shot job beside it that APScheduler could fail
    to remove); the scheduler's thread outlives hundreds of requests racing quick snapshots."""
    recorder = Recorder()
    sched = SnapshotScheduler(recorder, interval_minutes=60)
    sched.start()
    try:
        def ask():
            for _ in range(100):
                sched.trigger_now()
        askers = [threading.Thread(target=ask) for _ in range(4)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join()
        assert wait_until(lambda: recorder.calls >= 1)
        calls = recorder.calls
        sched.trigger_now()
        assert wait_until(lambda: recorder.calls > calls), "a request after the burst was not run"
        assert [job.id for job in sched.scheduler.get_jobs()] == ["guardian-snapshot"]
        # the request may have been run by an instance already on its way (two are allowed): the job
        # the request moved to now then runs once more and is back an interval away
        assert wait_until(lambda: sched.job.next_run_time > datetime.now(timezone.utc) + timedelta(minutes=59))
        assert any(t.name == "APScheduler" and t.is_alive() for t in threading.enumerate())
    finally:
        sched.shutdown()


def test_a_request_while_the_last_run_is_still_returning_is_not_lost():
    """A run that found no request pending is an APScheduler instance until it returns; a request in
    that gap must still be run (with one instance allowed, APScheduler skipped it for an interval)."""
    recorder = Recorder()
    in_tail, leave = threading.Event(), threading.Event()

    class SlowToReturn(SnapshotScheduler):
        def _run(self):
            super()._run()
            if not in_tail.is_set():
                in_tail.set()
                leave.wait(30)   # the first instance lingers after its snapshot

    sched = SlowToReturn(recorder, interval_minutes=60)
    sched.start()
    try:
        sched.trigger_now()
        assert in_tail.wait(30) and recorder.calls == 1
        sched.trigger_now()
        assert wait_until(lambda: recorder.calls == 2), "the request was dropped"
        assert wait_until(lambda: sched.job.next_run_time > datetime.now(timezone.utc) + timedelta(minutes=59))
    finally:
        leave.set()
        sched.shutdown()
