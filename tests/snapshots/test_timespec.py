from datetime import datetime, timedelta, timezone

import pytest

from guardian.errors import ExitCode, UsageError
from guardian.snapshots.timespec import distinct_times, nothing_at_or_before, parse_time, pick_snapshot

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


@pytest.mark.parametrize("text", ["", "yesterday", "2h ago", "+5m", "--5m", "2026-13-01", "5x",
                                  "５m", "٥m", "2026-11-2６", "1.５h"])
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


def test_a_minus_age_also_means_that_long_ago():
    """`--at -5m` reads as `date -d -5min` does: five minutes ago (not in the future)."""
    assert parse_time("-5m", NOW) == parse_time("5m", NOW) == NOW - timedelta(minutes=5)
    assert parse_time(" - 2h", NOW) == NOW - timedelta(hours=2)


def test_non_ascii_digits_are_refused_with_what_is_read():
    with pytest.raises(UsageError) as err:
        parse_time("５m", NOW)
    assert "ASCII" in err.value.message


def test_a_time_in_the_future_is_refused_not_read_as_latest():
    with pytest.raises(UsageError) as err:
        parse_time("2026-11-26T12:00:01Z", NOW)
    assert "in the future" in err.value.message and "latest" in err.value.hint
    assert parse_time("2026-11-26T12:00:00Z", NOW) == NOW          # now itself is not the future


def test_times_are_shown_precisely_enough_to_differ():
    first = NOW.replace(microsecond=537_591)
    assert distinct_times(NOW, first)[0] != distinct_times(NOW, first)[1]
    shown = distinct_times(NOW, first)[1]
    assert shown[19:23] == ".537" and not shown[23].isdigit()      # milliseconds tell them apart
    close = NOW.replace(microsecond=537_592)
    assert [t[19:26] for t in distinct_times(first, close)] == [".537591", ".537592"]
    assert distinct_times(NOW, NOW + timedelta(seconds=3))[0][19] != "."   # seconds suffice: no fraction


def test_an_at_before_the_first_snapshot_is_refused_with_both_times_told_apart():
    first = NOW.replace(microsecond=537_591)
    error = nothing_at_or_before(NOW, first, "", "`guardian snapshots`")
    assert error.exit_code == ExitCode.USAGE                       # the request must change; nothing failed
    at_text, first_text = distinct_times(NOW, first)
    assert f"at or before {at_text}; the first one is from {first_text}" in error.message
    assert at_text != first_text
