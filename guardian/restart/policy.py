"""Pure restart decisions: when a failure makes the child FATAL, and which backoff attempt comes next.

No clock, no I/O: every function takes ``now`` and returns a new value.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RestartPolicy:
    """How the supervisor reacts to a child that exits without being asked to."""

    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    jitter_fraction: float = 0.1
    stable_seconds: float = 60.0
    max_failures: int = 5
    failure_window: float = 300.0

    @classmethod
    def from_config(cls, config: Any) -> "RestartPolicy":
        return cls(
            backoff_initial=config.backoff_initial,
            backoff_max=config.backoff_max,
            jitter_fraction=getattr(config, "backoff_jitter", cls.jitter_fraction),
            stable_seconds=config.stable_seconds,
            max_failures=config.max_failures,
            failure_window=config.failure_window,
        )


@dataclass(frozen=True)
class FailureHistory:
    """Failure times still inside the window, and the backoff attempt of the latest failure."""

    times: tuple[float, ...] = ()
    attempt: int = 0


@dataclass(frozen=True)
class FailureVerdict:
    fatal: bool
    history: FailureHistory = field(default_factory=FailureHistory)

    @property
    def attempt(self) -> int:
        return self.history.attempt


def failures_in_window(times: tuple[float, ...], now: float, window: float) -> tuple[float, ...]:
    """The failure times no older than ``window`` seconds at ``now``."""
    return tuple(t for t in times if now - t <= window)


def ran_stably(started_at: float | None, now: float, policy: RestartPolicy) -> bool:
    """True when the child had been up for at least ``stable_seconds``: the backoff starts over."""
    return started_at is not None and now - started_at >= policy.stable_seconds


def after_failure(history: FailureHistory, started_at: float | None, now: float,
                  policy: RestartPolicy) -> FailureVerdict:
    """Record one failure at ``now`` (``started_at`` is None when the child never started).

    FATAL when ``max_failures`` failures fall within ``failure_window`` seconds. The backoff
    attempt grows with every failure and starts over at 1 after a stable run.
    """
    attempt = 1 if ran_stably(started_at, now, policy) else history.attempt + 1
    times = failures_in_window(history.times + (now,), now, policy.failure_window)
    new_history = FailureHistory(times=times, attempt=attempt)
    return FailureVerdict(fatal=len(times) >= policy.max_failures, history=new_history)


def describe_exit(returncode: int | None) -> dict:
    """``{"exit_code": n, "signal": name}`` from a Popen-style return code (negative = signal)."""
    if returncode is None:
        return {"exit_code": None, "signal": None}
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return {"exit_code": None, "signal": name}
    return {"exit_code": returncode, "signal": None}
