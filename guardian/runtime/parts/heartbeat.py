"""The heartbeat part: the status file (`guardian status` reads it) every few seconds and on every
child state change; the systemd watchdog ping when no supervisor pings it."""

from __future__ import annotations

from typing import Callable

from guardian.runtime import sd_notify as notify
from guardian.runtime.context import CHILD_STATE
from guardian.runtime.parts import ThreadedPart
from guardian.runtime.status import HEARTBEAT_SECONDS, StatusFile


class HeartbeatPart(ThreadedPart):
    """``describe(running)`` is the whole status file's content (the runtime composes it)."""

    name = "heartbeat"
    thread_name = "guardian-heartbeat"
    join_seconds = 10.0

    def __init__(self, ctx, describe: Callable[[bool], dict]) -> None:
        super().__init__(ctx)
        self.describe = describe
        self.status_file = StatusFile(ctx.paths.status_file)

    def start(self) -> None:
        self.write(running=True)
        self.ctx.on(CHILD_STATE, lambda **_: self.write(running=True))
        self.start_thread()

    def stop(self) -> None:
        self.stop_thread()
        self.write(running=False)

    def loop(self) -> None:
        while not self.wait_stopped(HEARTBEAT_SECONDS):
            self.write(running=True)
            if not self.ctx.cmd:
                notify.sd_notify("WATCHDOG=1")

    def write(self, running: bool) -> None:
        try:
            self.status_file.write(self.describe(running))
        except OSError as exc:
            self.ctx.log.warning("status_write_failed", error=str(exc))
