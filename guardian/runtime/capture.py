"""Continuous capture's timing (pure): which changed paths to snapshot, and when.

A burst of writes must make one snapshot, and no write may wait long: a batch is due once no
change arrived for ``quiet`` seconds, or ``max_wait`` seconds after its first change, whichever
comes first (so a steady stream of writes is still captured every ``max_wait`` seconds).
"""

from __future__ import annotations


class CaptureQueue:
    def __init__(self, quiet: float, max_wait: float) -> None:
        self.quiet = quiet
        self.max_wait = max(max_wait, quiet)
        self.paths: set[str] = set()
        self.first: float | None = None
        self.last: float | None = None

    def add(self, paths, now: float) -> None:
        paths = set(paths)
        if not paths:
            return
        self.paths |= paths
        self.first = now if self.first is None else self.first
        self.last = now

    def due_in(self, now: float) -> float | None:
        """Seconds until the batch is due (0: now); None when nothing waits."""
        if self.first is None:
            return None
        due = min(self.last + self.quiet, self.first + self.max_wait)
        return max(0.0, due - now)

    def take(self) -> set[str]:
        paths, self.paths, self.first, self.last = self.paths, set(), None, None
        return paths

    def put_back(self, paths, now: float) -> None:
        """A capture that failed: its paths wait for the next one (their first change is now)."""
        self.add(paths, now)

    def oldest_age(self, now: float) -> float | None:
        return None if self.first is None else now - self.first
