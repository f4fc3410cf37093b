"""The supervisor's states, and what the pre-flight hook answers before each start of the child.

::

    starting --preflight+spawn--> running --exit--> backoff --delay--> starting
                                     \\--too many failures in the window--> fatal
    any --stop/SIGTERM/SIGINT--> stopping --> stopped        fatal --restart--> starting
    running --pause (restore)--> paused --resume--> starting
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STARTING = "starting"
RUNNING = "running"
BACKOFF = "backoff"
PAUSED = "paused"
STOPPING = "stopping"
STOPPED = "stopped"
FATAL = "fatal"
STATES = (STARTING, RUNNING, BACKOFF, PAUSED, STOPPING, STOPPED, FATAL)


@dataclass(frozen=True)
class StartCheck:
    """What the pre-flight hook (check + repair) found: ``ok`` False means do not start the child."""

    ok: bool = True
    detail: str = ""
    repaired: bool = False

    @classmethod
    def coerce(cls, value: Any) -> "StartCheck":
        if isinstance(value, StartCheck):
            return value
        if value is None:
            return cls(ok=True)
        if isinstance(value, bool):
            return cls(ok=value)
        return cls(ok=bool(getattr(value, "ok", True)), detail=str(getattr(value, "detail", "")),
                   repaired=bool(getattr(value, "repaired", False)))
