"""One sidecar per store, whatever its state dir: a flock keyed on the store itself (``local.lock``),
held from the first part's start to the last stop. Holding it, a crashed predecessor's child that
is still alive is stopped before anything else starts."""

from __future__ import annotations

import contextlib

from guardian.local.lock import sidecar_lock
from guardian.runtime.parts import BasePart
from guardian.runtime.supervisor.child_record import stop_recorded_child


class LockPart(BasePart):
    name = "lock"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.held: contextlib.ExitStack | None = None

    def start(self) -> None:
        paths = self.ctx.paths
        stack = contextlib.ExitStack()
        stack.enter_context(sidecar_lock(paths.store, paths.root))  # LockError names the holder's pid
        self.held = stack
        # A crashed guardian's child still running would be a second writer next to ours: stop it.
        stop_recorded_child(paths.child_record_file, self.ctx.config.stop_timeout, self.ctx.log)

    def stop(self) -> None:
        if self.held is not None:
            self.held.close()
            self.held = None
