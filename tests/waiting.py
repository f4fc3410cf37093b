"""Polling with a deadline, for tests that wait on real processes, threads and files.

Deadlines are generous (30 s unless told): they catch a hang, never measure speed - CI is a
loaded 2-core box, and a condition that comes true returns at once however long the deadline.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request


def wait_until(condition, timeout: float = 30.0, interval: float = 0.01):
    """Poll ``condition`` until it returns something true or ``timeout`` seconds pass.

    Returns that true value (so ``pid = wait_until(read_pid)`` works), else the last false one.
    A costly condition (one that starts ``guardian status``, say) is not run back to back: the wait
    sleeps at least as long as the condition took, so polling takes at most half the CPU it waits
    on from the processes under test (and from the other test workers).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.monotonic()
        value = condition()
        if value:
            return value
        time.sleep(max(interval, time.monotonic() - started))
    return condition()


def wait_for(condition, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """:func:`wait_until`, failing the test when the deadline passes; returns the true value."""
    value = wait_until(condition, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return value


def http_status(url: str, timeout: float = 5.0) -> int:
    """The HTTP status ``url`` answers with (error statuses too), 0 while nothing answers: a condition
    such as ``wait_for(lambda: http_status(f"{base}/readyz") == 200)``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
