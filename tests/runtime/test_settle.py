"""Settle detection (pure): a path is judged only once quiet and closed."""

from guardian.runtime.settle import SettleTracker


def test_a_closed_file_settles_after_the_quiet_time():
    tracker = SettleTracker(quiet=1.0)
    tracker.note("c/a.gob", 10.0, closed=True)
    assert tracker.take_settled(10.9) == []
    assert tracker.next_due(10.9) == 1.0 - 0.9 or abs(tracker.next_due(10.9) - 0.1) < 1e-9
    assert tracker.take_settled(11.0) == ["c/a.gob"]
    assert tracker.take_settled(99.0) == []  # handed out once


def test_a_file_held_open_mid_write_never_settles_until_closed():
    tracker = SettleTracker(quiet=1.0, open_limit=30.0)
    tracker.note("c/a.gob", 0.0)            # truncated: the writer still holds it
    assert tracker.take_settled(5.0) == []   # a long pause mid-write: still open
    tracker.note("c/a.gob", 5.5)            # it writes
    tracker.note("c/a.gob", 5.6, closed=True)
    assert tracker.take_settled(6.5) == []
    assert tracker.take_settled(6.6) == ["c/a.gob"]


def test_a_lost_close_event_does_not_hide_damage_forever():
    tracker = SettleTracker(quiet=1.0, open_limit=30.0)
    tracker.note("c/a.gob", 0.0)
    assert tracker.take_settled(29.9) == []
    assert tracker.next_due(29.9) is not None and tracker.next_due(29.9) <= 0.1 + 1e-9
    assert tracker.take_settled(30.0) == ["c/a.gob"]


def test_without_close_events_quiet_time_is_enough():
    tracker = SettleTracker(quiet=2.0, close_events=False)
    tracker.note("c/a.gob", 0.0)
    assert tracker.take_settled(1.9) == [] and tracker.take_settled(2.0) == ["c/a.gob"]


def test_deletions_and_folders_need_no_close_and_a_new_event_restarts_the_wait():
    tracker = SettleTracker(quiet=1.0)
    tracker.note("c/00000000.gob", 0.0, deleted=True)
    tracker.note("stray", 0.0, is_dir=True)
    tracker.note("c/b.gob", 0.0, closed=True)
    tracker.note("c/b.gob", 0.8)  # written again, not closed yet
    assert tracker.take_settled(1.0) == ["c/00000000.gob", "stray"]
    assert tracker.unsettled() == ["c/b.gob"]
