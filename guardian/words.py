"""How guardian words a count for people: "1 object", "2 objects", "0 objects" -- one rule for
every line a command prints, so no output reads "1 objects" or "3 snapshot(s)"."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular for exactly one (``plural`` for a noun not made with an "s":
    ``count(2, "entry", "entries")``). The noun may carry words before it: "damaged file"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
