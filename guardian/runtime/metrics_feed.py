"""Feeding the Prometheus metrics from the runtime's facts; a failure is logged, never fatal."""

from __future__ import annotations

from guardian.runtime.status_facts import list_snapshot_headers


def update_store_metrics(ctx, scan) -> None:
    if scan is None:
        return
    try:
        ctx.metrics.set_store(scan)
    except Exception as exc:  # metrics are a view: a bug there must not stop a repair
        ctx.log.warning("metrics_update_failed", metric="store", error=f"{type(exc).__name__}: {exc}")


def update_snapshot_metrics(ctx) -> None:
    try:
        headers = list_snapshot_headers(ctx.paths)
        newest = max((h.time.timestamp() for h in headers), default=None)
        ctx.metrics.set_snapshots(len(headers), newest)
    except Exception as exc:  # an unreadable repository shows in `guardian verify`; keep running
        ctx.log.warning("metrics_update_failed", metric="snapshots", error=f"{type(exc).__name__}: {exc}")
