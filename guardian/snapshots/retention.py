"""Which snapshots to keep: a pure function in the spirit of restic's ``forget --keep-*``.

``keep_last`` keeps the newest N; ``keep_within`` keeps every snapshot taken within that time of
the newest one (continuous capture: every snapshot of the last hour); ``keep_hourly``/``keep_daily``/
``keep_weekly`` keep the newest snapshot of each of the last N hours/days/ISO weeks that have one
(UTC buckets). The newest snapshot is always kept, whatever the counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def _bucket_hour(moment: datetime):
    return (moment.year, moment.month, moment.day, moment.hour)


def _bucket_day(moment: datetime):
    return (moment.year, moment.month, moment.day)


def _bucket_week(moment: datetime):
    iso = moment.isocalendar()
    return (iso[0], iso[1])


def _keep_per_bucket(ordered: list[tuple[str, datetime]], count: int, bucket_of) -> set[str]:
    """Newest snapshot in each of the ``count`` newest buckets (``ordered`` is newest first)."""
    kept: set[str] = set()
    seen_buckets: set = set()
    for snapshot_id, taken in ordered:
        if len(seen_buckets) >= count:
            break
        bucket = bucket_of(taken)
        if bucket not in seen_buckets:
            seen_buckets.add(bucket)
            kept.add(snapshot_id)
    return kept


def plan_retention(snapshots: list[tuple[str, datetime]], keep_last: int = 24, keep_hourly: int = 0,
                   keep_daily: int = 0, keep_weekly: int = 0,
                   keep_within: timedelta = timedelta(0)) -> tuple[list[str], list[str]]:
    """Split snapshot ids into (keep, forget), both newest first. Never forgets the newest."""
    ordered = sorted(snapshots, key=lambda item: (item[1], item[0]), reverse=True)
    if not ordered:
        return [], []
    kept = {ordered[0][0]}
    kept.update(snapshot_id for snapshot_id, _ in ordered[:max(keep_last, 0)])
    if keep_within > timedelta(0):
        since = ordered[0][1] - keep_within
        kept.update(snapshot_id for snapshot_id, taken in ordered if taken >= since)
    kept |= _keep_per_bucket(ordered, keep_hourly, _bucket_hour)
    kept |= _keep_per_bucket(ordered, keep_daily, _bucket_day)
    kept |= _keep_per_bucket(ordered, keep_weekly, _bucket_week)
    keep = [snapshot_id for snapshot_id, _ in ordered if snapshot_id in kept]
    forget = [snapshot_id for snapshot_id, _ in ordered if snapshot_id not in kept]
    return keep, forget
