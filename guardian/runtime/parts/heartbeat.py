"""The heartbeat part: the status file (`guardian status` reads it) every few seconds and on every
child state change; the systemd watchdog ping when no supervisor pings it."""

from __future__ import annotations

import threading
from typing import Callable

from guardian.runtime import sd_notify as notify
from guardian.runtime.context import CHILD_STATE
from guardian.runtime.parts import BasePart
from guardian.runtime.status import HEARTBEAT_SECONDS, StatusFile


class HeartbeatPart(BasePart):
    """``describe(running)`` is the whole status file's content (the runtime composes it)."""

    name = "heartbeat"

    def __init__(self, ctx, describe: Callable[[bool], dict]) -> None:
        super().__init__(ctx)
        self.describe = describe
        self.status_file = StatusFile(ctx.paths.status_file)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.write(running=True)
        self.ctx.on(CHILD_STATE, lambda **_: self.write(running=True))
        self.thread = threading.Thread(target=self.beat, name="guardian-heartbeat", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.write(running=False)

    def beat(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            self.write(running=True)
            if not self.ctx.cmd:
                notify.sd_notify("WATCHDOG=1")

    def write(self, running: bool) -> None:
        try:
            self.status_file.write(self.describe(running))
        except OSError as exc:
            self.ctx.log.warning("status_write_failed", error=str(exc))
