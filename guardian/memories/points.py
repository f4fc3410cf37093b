"""Which snapshot a ``TIME|ID`` names (as ``restore --at`` takes them), and the errors of a lookup.

Pure: the snapshot ids and the current time are passed in. A snapshot id names exactly that
snapshot; a time (``latest``, ISO 8601, an age such as ``2h``) names the newest snapshot taken at or
before it.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from guardian.errors import UsageError
from guardian.snapshots.timespec import parse_time, pick_snapshot

STORE = "store"    # the store as it is now, where an answer names its point in time
SNAPSHOT_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{4}$")


class NotFound(UsageError):
    """What was asked for is not there (no such memory at that time, no snapshot then): HTTP 404."""

    http_status = 404


def snapshot_time(snapshot_id: str) -> datetime:
    """When a snapshot was taken, from its id (ids start with their UTC time)."""
    return datetime.strptime(snapshot_id[:23], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def resolve_snapshot(text: str, ids: list[str], now: datetime) -> str:
    """The snapshot ``text`` names among ``ids`` (oldest first); NotFound if there is none."""
    text = (text or "").strip()
    if not ids:
        raise NotFound("there are no snapshots of this store yet", "take one with `guardian snapshot`")
    if SNAPSHOT_ID.match(text):
        if text not in ids:
            raise NotFound(f"there is no snapshot {text} of this store", "copy an id from `guardian snapshots`")
        return text
    at = parse_time(text, now)
    chosen = pick_snapshot([(i, snapshot_time(i)) for i in ids], at)
    if chosen is None:
        first = snapshot_time(ids[0]).astimezone().isoformat(timespec="seconds")
        raise NotFound(f"no snapshot was taken at or before {at.astimezone().isoformat(timespec='seconds')}; "
                       f"the first one is from {first}", "pass a later time (see `guardian snapshots`)")
    return chosen
