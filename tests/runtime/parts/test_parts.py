"""guardian.runtime.parts: the part defaults and the ThreadedPart worker-thread base, on real threads."""

from __future__ import annotations

import threading

from guardian.runtime.parts import BasePart, ThreadedPart
from tests.waiting import wait_for


class Counter(ThreadedPart):
    """A worker that counts wakes until stopped."""

    name = "counter"
    thread_name = "guardian-test-counter"

    def __init__(self) -> None:
        super().__init__(ctx=None)
        self.rounds = 0
        self.ended = threading.Event()

    def loop(self) -> None:
        while not self.wait_stopped(60):
            with self.cond:
                self.rounds += 1
        self.ended.set()


def test_base_part_defaults():
    part = BasePart(ctx="the context")
    part.start()
    part.stop()
    assert (part.ctx, part.status(), part.health()) == ("the context", {}, {})


def test_threaded_part_runs_its_loop_on_a_named_daemon_thread_and_stop_joins_it():
    part = Counter()
    part.start()
    assert part.thread.name == "guardian-test-counter" and part.thread.daemon
    assert part.thread.is_alive() and not part.stopping
    part.stop()
    assert part.stopping and not part.thread.is_alive() and part.ended.is_set()


def test_wake_ends_one_wait_without_stopping():
    part = Counter()
    part.start()
    try:
        for expected in (1, 2, 3):
            # the worker waits (up to 60 s) until woken; each wake is one more round
            wait_for(lambda: _waiting(part), what="the worker to wait")
            part.wake()
            wait_for(lambda: part.rounds >= expected, what=f"round {expected}")
        assert part.thread.is_alive()
    finally:
        part.stop()
    assert not part.thread.is_alive()


def test_wait_stopped_times_out_false_and_is_true_once_stopping():
    part = Counter()  # never started: wait_stopped on the caller's thread
    assert part.wait_stopped(0.01) is False
    part.stop()  # no thread yet: stop only sets the flag
    assert part.thread is None and part.wait_stopped(60) is True  # returns at once


def test_a_stop_from_another_thread_ends_a_long_wait():
    part = Counter()
    results = []
    waiter = threading.Thread(target=lambda: results.append(part.wait_stopped(600)))
    waiter.start()
    wait_for(lambda: _waiting(part), what="the waiter to wait")
    part.stop_thread()
    waiter.join(30)
    assert results == [True] and not waiter.is_alive()


def test_join_seconds_bounds_a_stop_on_a_stuck_worker():
    release = threading.Event()

    class Stuck(ThreadedPart):
        join_seconds = 0.05

        def loop(self) -> None:
            release.wait(60)  # ignores stopping

    part = Stuck(ctx=None)
    part.start()
    part.stop()  # returns after join_seconds although the worker is still busy
    assert part.stopping and part.thread.is_alive()
    release.set()
    part.thread.join(30)
    assert not part.thread.is_alive()


def _waiting(part: ThreadedPart) -> bool:
    """True while some thread waits on the part's condition."""
    with part.cond:
        return bool(part.cond._waiters)
