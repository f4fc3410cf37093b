"""systemd's notify protocol without a dependency: one datagram to $NOTIFY_SOCKET per message.

``sd_notify("READY=1")`` after pre-flight, ``"WATCHDOG=1"`` pings while alive, ``"STOPPING=1"``
when shutting down. Everything is a no-op when guardian does not run under systemd.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Callable, Mapping

READY = "READY=1"
WATCHDOG = "WATCHDOG=1"
STOPPING = "STOPPING=1"


def notify_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The socket address from $NOTIFY_SOCKET ('@name' is an abstract socket), or None."""
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET", "")
    if not address or not (address.startswith("/") or address.startswith("@")):
        return None
    return "\0" + address[1:] if address.startswith("@") else address


def sd_notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` to systemd; True when sent, False when not under systemd or on error."""
    address = notify_address(environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
        return True
    except OSError:
        return False


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """The watchdog timeout in seconds from $WATCHDOG_USEC when it is meant for this process."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    target = environ.get("WATCHDOG_PID", "")
    if target and target != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 1_000_000


class WatchdogPinger:
    """Call it as often as you like; it sends WATCHDOG=1 at most every half watchdog interval."""

    def __init__(self, interval: float | None, send: Callable[[str], bool] = sd_notify,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.send = send
        self.clock = clock
        self.last_ping: float | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "WatchdogPinger":
        return cls(watchdog_interval(environ), send=lambda message: sd_notify(message, environ))

    def __call__(self) -> bool:
        if not self.interval:
            return False
        now = self.clock()
        if self.last_ping is not None and now - self.last_ping < self.interval / 2:
            return False
        self.last_ping = now
        return self.send(WATCHDOG)
