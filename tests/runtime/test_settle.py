"""Settle detection (pure): a path is judged once quiet and held for writing by nobody; the clock
alone never judges a held file."""

from guardian.runtime.settle import SettleTracker


def test_a_quiet_file_nobody_holds_settles_without_any_close_event():
    tracker = SettleTracker(quiet=1.0)
    tracker.note("c/a.gob", 10.0)            # a truncate(2): one modify event, no open, no close
    assert tracker.due(10.9) == []
    assert abs(tracker.next_due(10.9) - 0.1) < 1e-9
    assert tracker.due(11.0) == ["c/a.gob"]
    assert tracker.settle(11.0, ["c/a.gob"], held=set()).settled == ["c/a.gob"]
    assert tracker.due(99.0) == [] and tracker.next_due(99.0) is None   # handed out once


def test_a_held_file_never_settles_however_long_it_is_held_and_is_offered_once_past_the_grace():
    tracker = SettleTracker(quiet=1.0, held_grace=10.0, recheck=1.0)
    tracker.note("c/a.gob", 0.0)             # truncated by a writer that then paused
    now, offered = 1.0, []
    while now < 3600.0:                      # an hour's pause: asked about every second, never judged
        due = tracker.due(now)
        assert due == ["c/a.gob"]
        settling = tracker.settle(now, due, held={"c/a.gob"})
        assert settling.settled == []
        offered += [(now, rel) for rel in settling.held_long]
        assert tracker.held() == ["c/a.gob"] and tracker.due(now) == []
        assert tracker.next_due(now) == 1.0
        now += 1.0
    assert offered == [(10.0, "c/a.gob")]    # once, when the grace had passed
    assert tracker.settle(now, tracker.due(now), held=set()).settled == ["c/a.gob"]   # closed at last
    assert tracker.unsettled() == [] and tracker.held() == []


def test_a_new_event_starts_a_path_again_and_it_may_be_offered_again():
    tracker = SettleTracker(quiet=1.0, held_grace=2.0)
    tracker.note("c/a.gob", 0.0)
    tracker.settle(1.0, tracker.due(1.0), held={"c/a.gob"})
    assert tracker.settle(2.0, tracker.due(2.0), held={"c/a.gob"}).held_long == ["c/a.gob"]
    tracker.note("c/a.gob", 2.5)             # guardian put a good copy in place (a rename: an event)
    assert tracker.due(3.0) == [] and tracker.held() == []
    tracker.settle(3.5, tracker.due(3.5), held={"c/a.gob"})
    assert tracker.settle(4.5, tracker.due(4.5), held={"c/a.gob"}).held_long == ["c/a.gob"]


def test_only_the_paths_asked_about_and_still_due_are_decided():
    tracker = SettleTracker(quiet=1.0)
    tracker.note("c/00000000.gob", 0.0)      # deleted: nothing holds a gone path
    tracker.note("stray", 0.0)               # a folder
    tracker.note("c/b.gob", 0.0)
    due = tracker.due(1.0)
    assert due == ["c/00000000.gob", "c/b.gob", "stray"]
    tracker.note("c/b.gob", 1.0)             # written again between the question and the answer
    assert tracker.settle(1.0, due, held=set()).settled == ["c/00000000.gob", "stray"]
    assert tracker.unsettled() == ["c/b.gob"]
