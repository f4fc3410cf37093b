"""Feeding the Prometheus metrics from the runtime's facts; a failure is logged, never fatal."""

from __future__ import annotations

from guardian.snapshots.repository import Repository
from guardian.snapshots.restore import id_time


def update_store_metrics(ctx, scan) -> None:
    if scan is None:
        return
    try:
        ctx.metrics.set_store(scan)
    except Exception as exc:  # metrics are a view: a bug there must not stop a repair
        ctx.log.warning("metrics_update_failed", metric="store", error=f"{type(exc).__name__}: {exc}")


def update_snapshot_metrics(ctx) -> None:
    """Count and newest time from the snapshot ids (no manifest read: continuous capture keeps thousands)."""
    try:
        ids = Repository(ctx.paths.snapshots).list_ids() if ctx.paths.snapshots.exists() else []
        ctx.metrics.set_snapshots(len(ids), id_time(ids[-1]).timestamp() if ids else None)
    except Exception as exc:  # an unreadable repository shows in `guardian verify`; keep running
        ctx.log.warning("metrics_update_failed", metric="snapshots", error=f"{type(exc).__name__}: {exc}")
