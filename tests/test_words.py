"""Counts read right: one rule for every command's output."""

from guardian.words import count


def test_one_is_singular_every_other_count_plural():
    assert count(1, "object") == "1 object"
    assert [count(n, "snapshot") for n in (0, 2, 95)] == ["0 snapshots", "2 snapshots", "95 snapshots"]
    assert count(1, "damaged file") == "1 damaged file" and count(3, "damaged file") == "3 damaged files"
    assert count(2, "entry", "entries") == "2 entries" and count(1, "entry", "entries") == "1 entry"
