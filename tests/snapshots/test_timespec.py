from datetime import datetime, timedelta, timezone

import pytest

from guardian.errors import UsageError
from guardian.snapshots.timespec import parse_time, pick_snapshot

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
PLUS2 = timezone(timedelta(hours=2))


def test_latest_means_none():
    assert parse_time("latest", NOW) is None
    assert parse_time(" LATEST ", NOW) is None


@pytest.mark.parametrize("text,delta", [("90m", timedelta(minutes=90)), ("2h", timedelta(hours=2)),
                                        ("1d", timedelta(days=1)), ("1w", timedelta(weeks=1)),
                                        ("30s", timedelta(seconds=30)), ("1.5h", timedelta(minutes=90))])
def test_relative_ages_mean_that_long_ago(text, delta):
    assert parse_time(text, NOW) == NOW - delta


def test_rfc3339_with_zone():
    assert parse_time("2026-11-26T10:15:00Z", NOW) == datetime(2026, 11, 26, 10, 15, tzinfo=timezone.utc)
    assert parse_time("2026-11-26T10:15:00+02:00", NOW) == datetime(2026, 11, 26, 8, 15, tzinfo=timezone.utc)
    assert parse_time("2026-11-26 10:15:00.5z", NOW) == datetime(2026, 11, 26, 10, 15, 0, 500000, tzinfo=timezone.utc)


def test_naive_time_is_local():
    assert parse_time("2026-11-26T10:15", NOW, local_zone=PLUS2) == datetime(2026, 11, 26, 8, 15, tzinfo=timezone.utc)
    assert parse_time("2026-11-26", NOW, local_zone=PLUS2) == datetime(2026, 11, 25, 22, 0, tzinfo=timezone.utc)


def test_result_is_utc():
    assert parse_time("2026-11-26T10:15:00+02:00", NOW).utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "yesterday", "2h ago", "-5m", "2026-13-01", "5x"])
def test_bad_times_are_usage_errors_with_hint(text):
    with pytest.raises(UsageError) as err:
        parse_time(text, NOW)
    assert "90m" in err.value.hint


def test_pick_newest_at_or_before():
    t = [NOW - timedelta(hours=h) for h in (3, 2, 1)]
    snaps = [("a", t[0]), ("c", t[2]), ("b", t[1])]
    assert pick_snapshot(snaps, None) == "c"
    assert pick_snapshot(snaps, t[1]) == "b"            # exactly at
    assert pick_snapshot(snaps, t[1] + timedelta(minutes=30)) == "b"   # between: the earlier
    assert pick_snapshot(snaps, t[0] - timedelta(seconds=1)) is None  # before the first
    assert pick_snapshot([], None) is None
