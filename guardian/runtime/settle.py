"""When has a file stopped changing? (Pure: events, a clock and the holders' facts in; settled paths out.)

chromem updates a file by truncating it (``os.Create``) and then writing it, with no lock: a 0-byte
or short file may be a write in progress, paused for as long as its writer is (a stopped, swapped
or debugged contextd). The clock cannot tell such a writer from damage nobody will ever mend; the
operating system can (``guardian.local.holders``), and the caller asks it. A path is *due* once no
event came for it for ``quiet`` seconds; then

- no process holds it open for writing: it has *settled* and is judged now - whether or not a close
  event came (an inotify close event can be lost, and a path-level ``truncate(2)`` opens and closes
  nothing);
- a process holds it for writing: it is not damage and not settled. It is asked about again every
  ``recheck`` seconds, and once ``held_grace`` seconds have passed since its last change it is
  handed out once as *held long*: the caller may make it loadable meanwhile, but only in a way that
  keeps the holder's later bytes (``guardian.repair.held``).

A new event for a path starts it again from the beginning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RECHECK_SECONDS = 1.0      # a held file is asked about this often (one lease probe, or one /proc scan)
DEFAULT_HELD_GRACE = 3.0   # a held file is made loadable after this long (a normal write takes milliseconds)


@dataclass
class Watched:
    last_change: float
    check_at: float            # when to ask about it (again)
    held: bool = False         # held for writing when last asked
    offered: bool = False      # handed out as held long (once per change)


@dataclass
class Settling:
    """What one look at the due paths decided."""

    settled: list[str] = field(default_factory=list)      # judge these now (forgotten here)
    held_long: list[str] = field(default_factory=list)    # held past the grace, handed out once


class SettleTracker:
    """Paths that changed, until they settle (then handed out once by :meth:`settle`)."""

    def __init__(self, quiet: float, held_grace: float = DEFAULT_HELD_GRACE,
                 recheck: float = RECHECK_SECONDS) -> None:
        self.quiet = quiet
        self.held_grace = max(held_grace, quiet)
        self.recheck = recheck
        self.watched: dict[str, Watched] = {}

    def note(self, rel: str, now: float) -> None:
        """An event for ``rel`` (a change, a deletion, a folder): it is due ``quiet`` seconds from now."""
        self.watched[rel] = Watched(now, now + self.quiet)

    def due(self, now: float) -> list[str]:
        """The paths to ask the holders about now (sorted)."""
        return sorted(rel for rel, item in self.watched.items() if item.check_at <= now)

    def settle(self, now: float, due: list[str], held: set[str] | frozenset[str]) -> Settling:
        """Given which of ``due`` a process holds for writing (the caller asked the OS), the paths
        that settled (forgotten here: a new event starts them again) and the ones held past the grace."""
        out = Settling()
        for rel in due:
            item = self.watched.get(rel)
            if item is None or item.check_at > now:
                continue   # a new event came meanwhile: it waits its quiet time again
            if rel not in held:
                del self.watched[rel]
                out.settled.append(rel)
                continue
            item.held = True
            item.check_at = now + self.recheck
            if not item.offered and now - item.last_change >= self.held_grace:
                item.offered = True
                out.held_long.append(rel)
        return out

    def unsettled(self) -> list[str]:
        return sorted(self.watched)

    def held(self) -> list[str]:
        """Paths a process held for writing when last asked (a paused writer's, say)."""
        return sorted(rel for rel, item in self.watched.items() if item.held)

    def next_due(self, now: float) -> float | None:
        """Seconds until the next path is due (None: nothing watched)."""
        if not self.watched:
            return None
        return max(0.0, min(item.check_at for item in self.watched.values()) - now)
