"""The runtime's parts: each one thing guardian does while it runs (see guardian.runtime.assembly).

A part has a ``name``, ``start()``, ``stop()``, ``status()`` (keys merged into the status file's
``sidecar`` section) and ``health()`` (keys merged into /healthz). It talks to the other parts only
through the :class:`~guardian.runtime.context.RuntimeContext` it was built with.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Part(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> dict: ...

    def health(self) -> dict: ...


class Foreground(Protocol):
    """The part the main thread runs once every part started; signals are handed to it."""

    def run(self) -> int: ...

    def notify_signal(self, signum: int) -> None: ...


class BasePart:
    """Defaults for a part with nothing to stop or report."""

    name = "part"

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def status(self) -> dict:
        return {}

    def health(self) -> dict:
        return {}


class ThreadedPart(BasePart):
    """A part whose work runs on one worker thread, :meth:`loop`, woken through :attr:`cond`.

    Every piece of state the worker shares with other threads (the observer's callbacks, status
    readers) is guarded by ``cond``; a callback changes it under ``cond`` and calls
    ``cond.notify_all()`` (or :meth:`wake`). ``loop`` returns once ``stopping`` is set. The default
    ``start()``/``stop()`` only start and stop the thread; a part that subscribes to events or
    finishes work on stop overrides them and calls :meth:`start_thread` / :meth:`stop_thread`.
    """

    thread_name = "guardian-part"
    join_seconds = 30.0   # a stop never hangs on a stuck worker (the thread is a daemon)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.cond = threading.Condition()
        self.stopping = False
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.start_thread()

    def stop(self) -> None:
        self.stop_thread()

    def loop(self) -> None:
        raise NotImplementedError

    def start_thread(self) -> None:
        self.thread = threading.Thread(target=self.loop, name=self.thread_name, daemon=True)
        self.thread.start()

    def stop_thread(self) -> None:
        """Set ``stopping``, wake the worker and wait for it (up to ``join_seconds``)."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join(self.join_seconds)

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def wait_stopped(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, or less if woken; True once stopping (like ``threading.Event.wait``)."""
        with self.cond:
            if not self.stopping:
                self.cond.wait(seconds)
            return self.stopping
