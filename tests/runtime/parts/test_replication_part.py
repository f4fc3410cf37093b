"""The replication part on its own: pushes after each committed snapshot, backs off while the
replica is unusable, alerts once per run of failures and once on recovery, never blocks a snapshot."""

from __future__ import annotations

import pytest

from guardian.config import Config
from guardian.local.paths import StatePaths
from guardian.runtime import alerts
from guardian.runtime.context import SNAPSHOT_TAKEN, RuntimeContext
from guardian.runtime.parts.replication import ReplicationPart
from guardian.snapshots.take import take_snapshot
from tests.waiting import wait_for


class RecordingAlerter:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def send(self, event, **fields):
        self.sent.append((event, fields))


@pytest.fixture
def setup(plain_store, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    disk = tmp_path / "backup-disk"
    config = Config(store=str(plain_store), replicas=(f"file://{disk}/guardian",), replica_interval_seconds=30,
                    backoff_initial=0.05, replica_backoff_max=0.2)
    paths = StatePaths.for_store(config.store_path, str(tmp_path / "state")).ensure()
    alerter = RecordingAlerter()
    ctx = RuntimeContext(config, paths, alerter=alerter)
    return ctx, alerter, disk


def test_failures_back_off_alert_once_and_recovery_catches_up(setup):
    ctx, alerter, disk = setup
    take_snapshot(ctx.paths)
    part = ReplicationPart(ctx)
    part.start()
    try:
        worker = part.workers[0]
        wait_for(lambda: worker.failures >= 3, timeout=60, what="repeated failures")   # the disk is not there
        assert [e for e, _ in alerter.sent] == [alerts.REPLICA_FAILING]
        assert "does not exist" in worker.last_error
        assert part.status()["replication"][0]["lag_seconds"] >= 0
        disk.mkdir()                                                                  # the disk is back
        wait_for(lambda: worker.pushes >= 1, timeout=60, what="a successful push")
        assert [e for e, _ in alerter.sent] == [alerts.REPLICA_FAILING, alerts.REPLICA_RECOVERED]
        assert part.status()["replication"][0]["lag_seconds"] == 0
        # a new committed snapshot is pushed at once, not after the 30 s interval
        second = take_snapshot(ctx.paths)
        ctx.emit(SNAPSHOT_TAKEN)
        wait_for(lambda: (disk / "guardian" / "snapshots" / second.id).exists(), timeout=30, what="the new record")
        metrics = ctx.metrics.render().decode()
        assert 'guardian_replica_errors_total{replica="file://' in metrics
        assert 'guardian_replica_up{replica="file://' in metrics and "guardian_replica_lag_seconds" in metrics
    finally:
        part.stop()
    assert not part.thread.is_alive()


def test_no_replicas_means_no_thread(setup):
    ctx, _, _ = setup
    part = ReplicationPart(RuntimeContext(ctx.config.replace(replicas=()), ctx.paths))
    part.start()
    assert part.thread is None and part.status() == {}
    part.stop()
