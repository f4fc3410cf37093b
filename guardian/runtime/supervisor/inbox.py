"""The supervisor's inbox: the only way other threads (and signal handlers) reach its loop.

Everything is a ``(kind, value)`` message on a ``queue.SimpleQueue`` (safe to put from a signal
handler); the loop thread takes them and acts. A caller that needs an answer (pause, resume)
sends a :class:`Reply` and waits on it.
"""

from __future__ import annotations

import queue
import signal
import threading
from typing import Any

from guardian.errors import SupervisorError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Reply:
    """A one-shot answer from the loop thread to a caller in another thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: dict = {}


class Inbox:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: list[tuple] = []   # taken from the queue by a wait, not handled yet

    def put(self, kind: str, value: Any = None) -> None:
        self._queue.put((kind, value))

    def wait(self, timeout: float) -> None:
        """Block up to ``timeout`` seconds for one message (kept for :meth:`take`)."""
        try:
            self._pending.append(self._queue.get(timeout=max(0.0, timeout)))
        except queue.Empty:
            pass

    def take(self) -> list[tuple]:
        """Every message waiting, oldest first."""
        messages, self._pending = self._pending, []
        while True:
            try:
                messages.append(self._queue.get_nowait())
            except queue.Empty:
                return messages

    def take_stop_signals(self) -> bool:
        """Remove any SIGTERM/SIGINT waiting (the rest stays for the loop); True when there was one."""
        messages = self.take()
        stops = [m for m in messages if m[0] == "signal" and m[1] in STOP_SIGNALS]
        self._pending = [m for m in messages if m not in stops]
        return bool(stops)

    def ask(self, kind: str, wait: float) -> dict:
        """Send ``kind`` with a reply and wait up to ``wait`` seconds for the loop's answer."""
        reply = Reply()
        self.put(kind, reply)
        if not reply.done.wait(wait):
            raise SupervisorError(f"the supervisor did not {kind} the child within {wait:g}s",
                                  "see guardian's log; the child may be stuck")
        return reply.value

    @staticmethod
    def answer(reply: Any, value: dict) -> None:
        if isinstance(reply, Reply):
            reply.value = value
            reply.done.set()
