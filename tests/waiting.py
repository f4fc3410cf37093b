"""Polling with a deadline, for tests that wait on real processes, threads and files."""

from __future__ import annotations

import time


def wait_until(condition, timeout: float = 5.0, interval: float = 0.01):
    """Poll ``condition`` until it returns something true or ``timeout`` seconds pass.

    Returns that true value (so ``pid = wait_until(read_pid)`` works), else the last false one.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


def wait_for(condition, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """:func:`wait_until`, failing the test when the deadline passes; returns the true value."""
    value = wait_until(condition, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return value
