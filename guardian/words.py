"""How guardian words a count for people: "1 object", "2 objects", "0 objects" -- one rule for
every line a command prints, so no output reads "1 objects" or "3 snapshot(s)"; and a duration,
short and rough ("45s", "12 min"), the same in `guardian status` and the console."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular for exactly one (``plural`` for a noun not made with an "s":
    ``count(2, "entry", "entries")``). The noun may carry words before it: "damaged file"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def human_duration(seconds: float | None) -> str:
    """Short and rough: 45s, 12 min, 3h, 2d."""
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"
