"""The control socket part: `guardian status`, `restart`, `restore` and `snapshot` talk to it."""

from __future__ import annotations

import contextlib
from typing import Callable

from guardian.errors import SupervisorError
from guardian.runtime.context import VERDICT
from guardian.runtime.control import ControlServer
from guardian.runtime.parts import BasePart
from guardian.restoring.pipeline import restore_for_sidecar


class ControlPart(BasePart):
    name = "control"

    def __init__(self, ctx, status: Callable[[], dict]) -> None:
        super().__init__(ctx)
        self.status_provider = status
        self.server: ControlServer | None = None

    def start(self) -> None:
        handlers = {"status": lambda **_: self.status_provider(), "restart": self.restart,
                    "restore": self.restore, "snapshot": self.snapshot, "verdict": self.verdict,
                    "repair": self.repair}
        self.server = ControlServer(self.ctx.paths.control_socket, handlers)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def restart(self, **_):
        child = self.ctx.child
        if child is None:
            raise SupervisorError("this sidecar supervises no child", "start it with `guardian run -- CMD`")
        child.request_restart()
        return {"ok": True, "child": child.snapshot()}

    def verdict(self, **_):
        """chromem's verdict on the store now (asked by `guardian exec` instead of walking the store)."""
        answer = self.ctx.ask(VERDICT)
        return answer if answer is not None else {"loadable": None}

    def repair(self, **_):
        """Check and repair now (asked by `guardian exec` when the verdict is bad); the new verdict."""
        result = self.ctx.repair()
        scan = getattr(result, "scan", None)
        return {"loadable": None if scan is None else bool(scan.loadable),
                "actions": len(getattr(result, "actions", []))}

    def snapshot(self, **_):
        result = self.ctx.take_snapshot()
        return {"ok": True, "snapshot": result.to_dict() if hasattr(result, "to_dict") else str(result)}

    def restore(self, **request):
        """Stop the child, restore, check, start it again (asked by `guardian restore`, which planned
        the same request and sends the snapshot it chose: ``restoring.RestoreRequest.to_wire``)."""
        ctx = self.ctx
        child = ctx.child

        @contextlib.contextmanager
        def child_stopped():
            paused = child.pause_child() if child is not None else None
            try:
                yield {}
            finally:
                if paused is not None:
                    child.resume_child()

        result = restore_for_sidecar(ctx.paths, request, around=child_stopped)
        ctx.refresh_index()
        ctx.log.warning("restored", snapshot=result["snapshot"], collection=result["collection"],
                        ids=result["ids"], child_restarted=child is not None)
        return {"restore": result, "child_paused": child is not None}
