from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from guardian.snapshots.retention import plan_retention

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=timezone.utc)


def hourly(count, start=T0, step=timedelta(hours=1)):
    return [(f"s{i:03d}", start + i * step) for i in range(count)]


def test_keeps_newest_24_by_default():
    snaps = hourly(30)
    keep, forget = plan_retention(snaps)
    assert keep == [f"s{i:03d}" for i in range(29, 5, -1)]
    assert forget == [f"s{i:03d}" for i in range(5, -1, -1)]


def test_never_forgets_the_newest_even_with_zero_counts():
    keep, forget = plan_retention(hourly(5), keep_last=0)
    assert keep == ["s004"]
    assert len(forget) == 4


def test_empty():
    assert plan_retention([]) == ([], [])


def test_keep_daily_keeps_newest_of_each_day():
    snaps = hourly(72)  # three days, hourly
    keep, _ = plan_retention(snaps, keep_last=1, keep_daily=3)
    assert keep == ["s071", "s047", "s023"]


def test_keep_hourly_with_several_per_hour():
    snaps = hourly(12, step=timedelta(minutes=15))  # 3 hours, 4 per hour
    keep, _ = plan_retention(snaps, keep_last=1, keep_hourly=2)
    assert keep == ["s011", "s007"]


def test_keep_weekly_uses_iso_weeks():
    snaps = hourly(21, step=timedelta(days=1))  # 3 weeks daily
    keep, _ = plan_retention(snaps, keep_last=1, keep_weekly=2)
    assert len(keep) == 2
    weeks = {dict(snaps)[k].isocalendar()[1] for k in keep}
    assert len(weeks) == 2


def test_unsorted_input_is_fine():
    snaps = hourly(5)[::-1]
    keep, forget = plan_retention(snaps, keep_last=2)
    assert keep == ["s004", "s003"]
    assert forget == ["s002", "s001", "s000"]


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=60, unique=True),
       st.integers(0, 30), st.integers(0, 5), st.integers(0, 5), st.integers(0, 3))
def test_partition_properties(minutes, last, hourly_n, daily, weekly):
    snaps = [(f"id{m}", T0 + timedelta(minutes=m * 37)) for m in minutes]
    keep, forget = plan_retention(snaps, last, hourly_n, daily, weekly)
    assert set(keep) | set(forget) == {s for s, _ in snaps}
    assert not set(keep) & set(forget)
    newest = max(snaps, key=lambda s: s[1])[0]
    assert newest in keep
    assert len(keep) <= max(1, last) + hourly_n + daily + weekly + 1


def test_keep_within_keeps_every_snapshot_of_the_last_hour_then_one_per_hour():
    from datetime import timedelta

    newest = datetime(2026, 12, 1, 12, 0, 30, tzinfo=timezone.utc)
    # one snapshot every 10 s for three hours
    snaps = [(f"s{i:05d}", newest - timedelta(seconds=10 * i)) for i in range(3 * 360)]
    keep, forget = plan_retention(snaps, keep_last=24, keep_hourly=24, keep_within=timedelta(minutes=60))
    recent = {sid for sid, taken in snaps if taken >= newest - timedelta(minutes=60)}
    assert recent <= set(keep)
    older = [sid for sid in keep if sid not in recent]
    hours = {next(t for s, t in snaps if s == sid).replace(minute=0, second=0) for sid in older}
    assert len(older) == len(hours)  # at most one per hour beyond the last hour
    assert len(keep) == len(recent) + len(older) and set(keep) | set(forget) == {s for s, _ in snaps}
    assert not set(keep) & set(forget)
