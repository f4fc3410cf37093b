"""Stopping the child's process group: signal, wait, SIGKILL, reap - never leave a process behind.

Polls start fast (most children exit at once) and slow down; a second stop signal while waiting
(``hurry()``) means SIGKILL now.
"""

from __future__ import annotations

import signal
from typing import Any, Callable

from guardian.runtime.supervisor.process import ChildProcess

STOP_POLL_FIRST_SECONDS = 0.001
STOP_POLL_SECONDS = 0.02
KILL_GRACE_SECONDS = 5.0


class GroupStopper:
    """``terminate(process, first_signal)`` -> the leader's return code; ``clean_up(process)`` after the
    leader died on its own. ``pause(seconds)`` and ``clock()`` are the supervisor's (fake in tests)."""

    def __init__(self, log: Any, clock: Callable[[], float], pause: Callable[[float], None],
                 stop_timeout: float, hurry: Callable[[], bool]) -> None:
        self.log, self.clock, self.pause = log, clock, pause
        self.stop_timeout = stop_timeout
        self.hurry = hurry

    def terminate(self, process: ChildProcess, first_signal: int) -> int | None:
        process.signal_group(first_signal)
        if self.wait_gone(process, self.stop_timeout):
            return process.poll()
        self.log.warning("child_kill", pid=process.pid, after=self.stop_timeout)
        process.signal_group(signal.SIGKILL)
        if not self.wait_gone(process, KILL_GRACE_SECONDS):
            self.log.error("child_unkillable", pid=process.pid)
        return process.poll()

    def clean_up(self, process: ChildProcess) -> None:
        """After the leader died on its own: make sure nothing it left in its group survives."""
        process.reap_group_members()
        if process.group_alive():
            self.log.warning("child_left_processes", pgid=process.pid)
            self.terminate(process, signal.SIGTERM)

    def wait_gone(self, process: ChildProcess, timeout: float) -> bool:
        deadline = self.clock() + timeout
        pause = STOP_POLL_FIRST_SECONDS
        while True:
            leader_done = process.poll() is not None
            if leader_done:
                process.reap_group_members()
            if leader_done and not process.group_alive():
                return True
            if self.clock() >= deadline or self.hurry():
                return False
            self.pause(pause)
            pause = min(pause * 2, STOP_POLL_SECONDS)
