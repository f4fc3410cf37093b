"""One sidecar per store: a non-blocking flock held from the first part's start to the last stop."""

from __future__ import annotations

import fcntl
import os

from guardian.errors import LockError
from guardian.local.fsutil import ensure_dir
from guardian.runtime.parts import BasePart


class LockPart(BasePart):
    name = "lock"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.fd: int | None = None

    def start(self) -> None:
        paths = self.ctx.paths
        ensure_dir(paths.root)
        fd = os.open(paths.root / "sidecar.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockError(f"another guardian sidecar already guards {paths.store}",
                            "see `guardian status`; stop the other one first") from None
        self.fd = fd

    def stop(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
