"""Feeding the metrics from the runtime's facts: real scans and snapshots; a failure is logged, not raised."""

from __future__ import annotations

from guardian.runtime.metrics_feed import update_snapshot_metrics, update_store_metrics
from guardian.snapshots.restore import id_time
from guardian.snapshots.take import take_snapshot
from guardian.store.scan import scan_store


def metric(ctx, name: str) -> float:
    for line in ctx.metrics.render().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not rendered")


def test_the_store_and_snapshot_metrics_follow_the_facts(parts):
    ctx = parts.make()
    update_snapshot_metrics(ctx)                        # no repository yet: zero, no failure
    assert metric(ctx, "guardian_snapshots") == 0 and metric(ctx, "guardian_newest_snapshot_timestamp_seconds") == 0
    update_store_metrics(ctx, scan_store(parts.store))
    assert metric(ctx, "guardian_store_loadable") == 1 and metric(ctx, "guardian_documents") > 0
    update_store_metrics(ctx, None)                     # no scan: the last figures stay
    assert metric(ctx, "guardian_store_loadable") == 1
    first = take_snapshot(ctx.paths)
    update_snapshot_metrics(ctx)
    assert metric(ctx, "guardian_snapshots") == 1
    assert metric(ctx, "guardian_newest_snapshot_timestamp_seconds") == id_time(first.id).timestamp()


def test_an_unreadable_repository_is_logged_not_raised(parts, caplog):
    ctx = parts.make()
    ctx.paths.snapshots.parent.mkdir(parents=True, exist_ok=True)
    ctx.paths.snapshots.write_text("a file where the repository folder belongs")
    update_snapshot_metrics(ctx)
    assert caplog.text.count("metrics_update_failed") == 1 and '"metric": "snapshots"' in caplog.text
