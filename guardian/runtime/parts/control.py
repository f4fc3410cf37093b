"""The control socket part: `guardian status`, `restart`, `restore` and `snapshot` talk to it."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

from guardian.errors import SupervisorError
from guardian.runtime.context import MCP_FALLBACK, MCP_READY, RESTORE, UNDO_RESTORE, VERDICT
from guardian.runtime.control import ControlServer
from guardian.runtime.parts import BasePart
from guardian.restoring.pipeline import restore_for_sidecar
from guardian.restoring.undo import undo_restore
from guardian.restoring.users import SupervisedChild


class ControlPart(BasePart):
    name = "control"

    def __init__(self, ctx, status: Callable[[], dict]) -> None:
        super().__init__(ctx)
        self.status_provider = status
        self.server: ControlServer | None = None

    def start(self) -> None:
        handlers = {"status": lambda **_: self.status_provider(), "restart": self.restart,
                    "restore": self.restore, "snapshot": self.snapshot, "verdict": self.verdict,
                    "repair": self.repair, "undo_restore": self.undo_restore,
                    "mcp_ready": self.mcp_service(MCP_READY)}
        streams = {"mcp_fallback": self.mcp_service(MCP_FALLBACK)}
        self.server = ControlServer(self.ctx.paths.control_socket, handlers, streams)
        self.server.start()
        self.ctx.provide(RESTORE, self.restore)   # the console's restores: the same code as `guardian restore`'s
        self.ctx.provide(UNDO_RESTORE, self.undo_restore)

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

    def restore(self, **request):
        """Restore as `guardian restore` asked (it planned the same request and sends the snapshot it
        chose: ``restoring.RestoreRequest.to_wire``): the child is stopped around it and started again
        (unless the request opts out), then the index is refreshed."""
        ctx = self.ctx
        result = restore_for_sidecar(ctx.paths, request, supervised_child(ctx.child))
        ctx.refresh_index()
        restarted = bool(result.get("child_restarted"))
        ctx.log.warning("restored", snapshot=result["snapshot"], collection=result["collection"],
                        ids=result["ids"], child_restarted=restarted)
        return {"restore": result, "child_paused": restarted}


    def undo_restore(self, restore_id: str | None = None, force: bool = False, restart_child: bool = True, **_):
        """`guardian restore --undo`: the store as before one restore, the child stopped around it."""
        ctx = self.ctx
        outcome = undo_restore(ctx.paths, restore_id, force=bool(force), restart_child=restart_child is not False,
                               child=supervised_child(ctx.child))
        ctx.refresh_index()
        ctx.log.warning("restore_undone", restore=outcome.restore_id, child_restarted=outcome.child_restarted)
        return outcome.to_dict()


def supervised_child(child) -> SupervisedChild | None:
    """The supervisor as the restore pipeline sees it: the child's process group (it leads one) and
    how to stop it around a restore and start it again (pre-flight first)."""
    if child is None:
        return None

    @contextlib.contextmanager
    def stopped():
        child.pause_child()
        try:
            yield
        finally:
            child.resume_child()

    return SupervisedChild(child.snapshot().get("pid"), stopped)
