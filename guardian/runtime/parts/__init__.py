"""The runtime's parts: each one thing guardian does while it runs (see guardian.runtime.assembly).

A part has a ``name``, ``start()``, ``stop()``, ``status()`` (keys merged into the status file's
``sidecar`` section) and ``health()`` (keys merged into /healthz). It talks to the other parts only
through the :class:`~guardian.runtime.context.RuntimeContext` it was built with.
"""

from __future__ import annotations

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
