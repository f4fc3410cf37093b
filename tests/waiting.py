"""Polling with a deadline, for tests that wait on real processes, threads and files."""

from __future__ import annotations

import time


def wait_until(condition, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
