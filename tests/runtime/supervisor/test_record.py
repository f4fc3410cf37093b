"""What the supervisor knows of its child (the record `status` and /healthz read)."""

from __future__ import annotations

from guardian.restart.policy import FailureHistory, RestartPolicy
from guardian.runtime.supervisor.record import SupervisionRecord
from guardian.runtime.supervisor.states import BACKOFF, RUNNING, STARTING


class Child:
    pid = 4242


def test_a_start_a_restart_an_exit_and_a_backoff_as_status_shows_them():
    record = SupervisionRecord(since=100.0)
    policy = RestartPolicy(max_failures=3, failure_window=60)
    first = record.snapshot(now=10.0, cmd=["contextd"], policy=policy)
    assert (first["state"], first["pid"], first["uptime"], first["restarts"]) == (STARTING, None, None, 0)
    record.started(Child(), now=10.0)
    record.move_to(RUNNING, since=101.0)
    running = record.snapshot(now=12.5, cmd=["contextd"], policy=policy)
    assert (running["pid"], running["uptime"], running["since"], running["restarts"]) == (4242, 2.5, 101.0, 0)
    record.ended(-9)
    record.failed(FailureHistory(times=(12.5,), attempt=1), "child exited unexpectedly (killed by SIGKILL)")
    record.retry_at = 14.0
    record.move_to(BACKOFF, since=102.0)
    backoff = record.snapshot(now=13.0, cmd=["contextd"], policy=policy)
    assert backoff["pid"] is None and backoff["last_exit_signal"] == "SIGKILL" and backoff["retry_in"] == 1.0
    assert backoff["failures_in_window"] == 1 and backoff["max_failures"] == 3
    assert record.describe_last_exit() == "killed by SIGKILL"
    record.started(Child(), now=14.0)
    assert record.restarts == 1 and record.spawns == 2
    record.ended(3)
    assert record.describe_last_exit() == "exit code 3"


def test_forgive_clears_fatal_and_the_failure_history():
    record = SupervisionRecord(since=0.0)
    record.failed(FailureHistory(times=(1.0, 2.0), attempt=2), "boom")
    record.fatal_reason = "2 failures within 60s; last: boom"
    record.forgive()
    snap = record.snapshot(now=3.0, cmd=["x"], policy=RestartPolicy())
    assert snap["fatal_reason"] is None and snap["failures_in_window"] == 0 and snap["last_error"] == "boom"
