"""Which snapshot a TIME|ID names (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from guardian.errors import UsageError
from guardian.memories.points import NotFound, resolve_snapshot, snapshot_time

IDS = ["20261126T090000.000000Z-aaaa", "20261126T100000.000000Z-bbbb", "20261126T110000.500000Z-cccc"]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def test_ids_times_and_ages_name_snapshots():
    assert snapshot_time(IDS[2]) == datetime(2026, 11, 26, 11, 0, 0, 500000, tzinfo=timezone.utc)
    assert resolve_snapshot(IDS[0], IDS, NOW) == IDS[0]
    assert resolve_snapshot("latest", IDS, NOW) == IDS[2]
    assert resolve_snapshot("2026-11-26T10:30Z", IDS, NOW) == IDS[1]
    assert resolve_snapshot("2h", IDS, NOW) == IDS[1]          # 10:00, taken exactly then
    assert resolve_snapshot("2026-11-26T10:00:00Z", IDS, NOW) == IDS[1]


@pytest.mark.parametrize("text,ids,words", [
    ("latest", [], "no snapshots of this store yet"),
    ("20261126T093000.000000Z-dddd", IDS, "there is no snapshot 20261126T093000.000000Z-dddd"),
    ("4h", IDS, "no snapshot was taken at or before"),
])
def test_what_is_not_there_is_not_found(text, ids, words):
    with pytest.raises(NotFound, match=words) as raised:
        resolve_snapshot(text, ids, NOW)
    assert raised.value.http_status == 404 and raised.value.hint


def test_a_bad_time_is_a_usage_error():
    with pytest.raises(UsageError, match="cannot read the time") as raised:
        resolve_snapshot("yesterday", IDS, NOW)
    assert not isinstance(raised.value, NotFound)
