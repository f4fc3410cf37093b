"""What the supervisor knows about its child, as `status` and /healthz show it.

Written by the loop thread only, read from any thread (``snapshot``): every change is one
method, under the record's lock, so a reader never sees half of one.
"""

from __future__ import annotations

import threading
from typing import Any

from guardian.restart.policy import FailureHistory, RestartPolicy, describe_exit
from guardian.runtime.supervisor.process import ChildProcess
from guardian.runtime.supervisor.states import BACKOFF, STARTING


class SupervisionRecord:
    def __init__(self, since: float) -> None:
        self.lock = threading.Lock()
        self.state = STARTING
        self.since = since
        self.process: ChildProcess | None = None
        self.started_at: float | None = None   # monotonic time the running child started
        self.retry_at: float | None = None     # monotonic time of the next start (in backoff)
        self.history = FailureHistory()
        self.spawns = 0
        self.restarts = 0
        self.last_exit: dict = describe_exit(None)
        self.last_error = ""
        self.fatal_reason = ""

    def move_to(self, state: str, since: float) -> None:
        with self.lock:
            self.state, self.since = state, since

    def started(self, process: ChildProcess, now: float) -> None:
        with self.lock:
            self.process, self.started_at = process, now
            if self.spawns:
                self.restarts += 1
            self.spawns += 1

    def ended(self, returncode: int | None) -> None:
        """The child is gone (it exited, or was stopped)."""
        with self.lock:
            self.process = None
            self.last_exit = describe_exit(returncode)

    def failed(self, history: FailureHistory, reason: str) -> None:
        with self.lock:
            self.history, self.last_error = history, reason

    def forgive(self) -> None:
        """`guardian restart`: FATAL and the failure history are forgotten."""
        with self.lock:
            self.history, self.fatal_reason = FailureHistory(), ""

    def describe_last_exit(self) -> str:
        if self.last_exit.get("signal"):
            return f"killed by {self.last_exit['signal']}"
        return f"exit code {self.last_exit.get('exit_code')}"

    def snapshot(self, now: float, cmd: list[str], policy: RestartPolicy) -> dict[str, Any]:
        with self.lock:
            process = self.process
            return {
                "state": self.state,
                "since": self.since,
                "pid": getattr(process, "pid", None) if process is not None else None,
                "uptime": now - self.started_at if process is not None and self.started_at is not None else None,
                "command": list(cmd),
                "restarts": self.restarts,
                "failures_in_window": len(self.history.times),
                "max_failures": policy.max_failures,
                "failure_window": policy.failure_window,
                "last_exit_code": self.last_exit.get("exit_code"),
                "last_exit_signal": self.last_exit.get("signal"),
                "last_error": self.last_error or None,
                "fatal_reason": self.fatal_reason or None,
                "retry_in": (max(0.0, self.retry_at - now)
                             if self.state == BACKOFF and self.retry_at is not None else None),
            }
