"""The control socket part: `guardian status`, `restart`, `restore` and `snapshot` talk to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from guardian.errors import SupervisorError
from guardian.runtime.context import MCP_FALLBACK, MCP_READY, VERDICT
from guardian.runtime.control import ControlServer
from guardian.runtime.parts import BasePart
from guardian.snapshots.restore import restore_store


class ControlPart(BasePart):
    name = "control"

    def __init__(self, ctx, status: Callable[[], dict]) -> None:
        super().__init__(ctx)
        self.status_provider = status
        self.server: ControlServer | None = None

    def start(self) -> None:
        handlers = {"status": lambda **_: self.status_provider(), "restart": self.restart,
                    "restore": self.restore, "snapshot": self.snapshot, "verdict": self.verdict,
                    "repair": self.repair, "mcp_ready": self.mcp_service(MCP_READY)}
        streams = {"mcp_fallback": self.mcp_service(MCP_FALLBACK)}
        self.server = ControlServer(self.ctx.paths.control_socket, handlers, streams)
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

    def mcp_service(self, service: str) -> Callable[..., Any]:
        """A `guardian mcp` session's request, answered by the mcp_answers part (asked, not imported)."""
        def handle(**args):
            if not self.ctx.offers(service):
                raise SupervisorError("this sidecar does not answer guardian mcp sessions",
                                      "the session answers from its own index")
            return self.ctx.ask(service, **args)
        return handle

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

    def restore(self, at: str | None = None, collection: str | None = None, allow_damaged: bool = False, **_):
        """Stop the child, restore, check, start it again (asked by `guardian restore`).

        ``at`` is an ISO 8601 instant already resolved by the CLI (None: the latest snapshot).
        """
        ctx = self.ctx
        when = datetime.fromisoformat(at) if at else None
        child = ctx.child
        paused = child.pause_child() if child is not None else None
        try:
            result = restore_store(ctx.paths, when, collection, confirm=None, allow_damaged=bool(allow_damaged))
        finally:
            if paused is not None:
                child.resume_child()
        ctx.refresh_index()
        ctx.log.warning("restored", snapshot=result.snapshot_id, collection=collection,
                        child_restarted=paused is not None)
        return {"restore": result.to_dict(), "child_paused": paused is not None}
