"""Parse the ``--at TIME`` of a restore: ``latest``, ISO 8601 / RFC 3339, or an age like ``2h``.

Pure: the current time is passed in. A time without a zone means local time. Only ASCII digits
count (Python's own parsers also take "５" or "٥" as digits: a time nobody typed on purpose); an
age may carry a minus (``-5m``: five minutes ago, as ``date -d -5min`` reads it); a time after
``now`` is refused rather than silently meaning the latest snapshot.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from guardian.errors import Refused, UsageError

LATEST = "latest"
_AGE = re.compile(r"^\s*-?\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_HINT = "use `latest`, an ISO 8601 time such as 2026-11-26T10:15 or 2026-11-26T10:15:00Z, or an age such as 90m, 2h, 1d"


def parse_time(text: str, now: datetime, local_zone=None) -> datetime | None:
    """The UTC instant ``text`` names; ``None`` means the latest snapshot.

    ``now`` must be timezone-aware. ``local_zone`` (a tzinfo) is used for naive times;
    default: the system's local zone.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    text = (text or "").strip()
    if not text:
        raise UsageError("empty --at time", _HINT)
    if not text.isascii():
        raise UsageError(f"cannot read the time {text!r}: only ASCII digits and letters are read", _HINT)
    if text.lower() == LATEST:
        return None
    age = _AGE.match(text)
    if age:
        seconds = float(age.group(1)) * _UNIT_SECONDS[age.group(2).lower()]
        try:
            return (now - timedelta(seconds=seconds)).astimezone(timezone.utc)
        except OverflowError:  # further back than year 1: no snapshot can be that old
            raise UsageError(f"the age {text!r} reaches back before the year 1", _HINT) from None
    moment = _parse_iso(text, local_zone).astimezone(timezone.utc)
    if moment > now:
        shown, now_shown = distinct_times(moment, now)
        raise UsageError(f"--at {text} is in the future ({shown}; it is now {now_shown})",
                         "use `latest` for the newest snapshot, or a time in the past")
    return moment


def _parse_iso(text: str, local_zone) -> datetime:
    normalized = text
    if normalized[-1:] in ("z", "Z"):
        normalized = normalized[:-1] + "+00:00"
    if len(normalized) > 10 and normalized[10] in (" ", "t"):
        normalized = normalized[:10] + "T" + normalized[11:]
    try:
        moment = datetime.fromisoformat(normalized)
    except ValueError:
        raise UsageError(f"cannot read the time {text!r}", _HINT) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local_zone) if local_zone else moment.astimezone()
    return moment


def pick_snapshot(snapshots: list[tuple[str, datetime]], at: datetime | None) -> str | None:
    """The id of the newest snapshot taken at or before ``at`` (``None``: the newest); None if none."""
    ordered = sorted(snapshots, key=lambda item: (item[1], item[0]))
    chosen = None
    for snapshot_id, taken in ordered:
        if at is None or taken <= at:
            chosen = snapshot_id
    return chosen


def distinct_times(*moments: datetime) -> list[str]:
    """The moments as local ISO times, with seconds, or as many sub-second digits as it takes to
    tell different moments apart (snapshots are compared to the microsecond)."""
    for spec in ("seconds", "milliseconds", "microseconds"):
        texts = [moment.astimezone().isoformat(timespec=spec) for moment in moments]
        if len(set(texts)) == len(set(moments)):
            break
    return texts


def nothing_at_or_before(at: datetime, first: datetime, where: str, listing: str) -> Refused:
    """The refusal of an --at older than the first snapshot: both times, precise enough to differ."""
    at_shown, first_shown = distinct_times(at, first)
    return Refused(f"no snapshot {where}was taken at or before {at_shown}; the first one is from {first_shown}",
                   f"pass a later --at (see {listing})")
