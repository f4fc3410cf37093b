"""When has a file stopped changing? (Pure: events and a clock in, settled paths out.)

chromem truncates a file in place and then writes it, with no lock, so a 0-byte or short file may
be a write in progress. guardian judges a path only once it has *settled*:

- no event for it for ``quiet`` seconds, and
- the last writer closed it (inotify's close-write; a rename delivers a whole file) - a writer that
  truncated a file and paused still holds it open, however long the pause;
- a file reported open for longer than ``open_limit`` seconds without a change is judged anyway
  (a lost close event must not hide damage forever); so is every path when close events are not
  available (the polling observer), after ``quiet`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_OPEN_LIMIT = 30.0


@dataclass
class Watched:
    last_change: float
    open: bool
    is_dir: bool = False


class SettleTracker:
    """Paths that changed, until they settle (then handed out once by :meth:`take_settled`)."""

    def __init__(self, quiet: float, open_limit: float = DEFAULT_OPEN_LIMIT, close_events: bool = True) -> None:
        self.quiet = quiet
        self.open_limit = max(open_limit, quiet)
        self.close_events = close_events
        self.watched: dict[str, Watched] = {}

    def note(self, rel: str, now: float, *, closed: bool = False, deleted: bool = False, is_dir: bool = False) -> None:
        """An event for ``rel``: a change (``closed``: its writer closed it; ``deleted``: it is gone)."""
        self.watched[rel] = Watched(now, open=not (closed or deleted or is_dir), is_dir=is_dir)

    def is_settled(self, item: Watched, now: float) -> bool:
        idle = now - item.last_change
        if idle < self.quiet:
            return False
        return not item.open or not self.close_events or idle >= self.open_limit

    def take_settled(self, now: float) -> list[str]:
        """The paths settled by ``now`` (sorted), forgotten here: a new event starts them again."""
        done = sorted(rel for rel, item in self.watched.items() if self.is_settled(item, now))
        for rel in done:
            del self.watched[rel]
        return done

    def unsettled(self) -> list[str]:
        return sorted(self.watched)

    def next_due(self, now: float) -> float | None:
        """Seconds until the next path may settle (None: nothing watched)."""
        if not self.watched:
            return None
        due = min(item.last_change + (self.open_limit if item.open and self.close_events else self.quiet)
                  for item in self.watched.values())
        return max(0.0, due - now)
