"""Progress on a terminal (one rewritten stderr line, at most ~10 updates a second); silent otherwise."""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    def __init__(self, label: str, stream=None, enabled: bool | None = None, clock=time.monotonic) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.clock = clock
        self.total = 0
        self.done = 0
        self._last = 0.0
        self._lock = threading.Lock()
        self._shown = False

    def start(self, total: int) -> None:
        self.total, self.done = total, 0

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            now = self.clock()
            if self.enabled and (now - self._last >= 0.1 or self.done == self.total):
                self._last = now
                self._show()

    def _show(self) -> None:
        share = f" {100 * self.done // self.total}%" if self.total else ""
        self.stream.write(f"\r{self.label}: {self.done}/{self.total} files{share}")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
