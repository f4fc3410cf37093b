"""Signal handlers that only record the signal: the supervisor's loop decides what to do with it."""

from __future__ import annotations

import signal
import threading
from typing import Callable

from guardian.errors import SupervisorError

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def install_signal_handlers(target, signals=HANDLED_SIGNALS) -> Callable[[], None]:
    """Route SIGTERM/SIGINT/SIGHUP to ``target.notify_signal`` (which only enqueues).

    Returns a function restoring the old handlers.

    Must be called from the main thread (Python only delivers signals there).
    """
    if threading.current_thread() is not threading.main_thread():
        raise SupervisorError("signal handlers can only be installed from the main thread",
                              "call install_signal_handlers() before starting other threads' work")

    def record(signum, _frame):
        target.notify_signal(signum)

    previous = {signum: signal.signal(signum, record) for signum in signals}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    return restore
