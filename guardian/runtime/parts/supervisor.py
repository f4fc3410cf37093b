"""The supervisor part: runs CMD (contextd) in the foreground, restarting it with a pre-flight."""

from __future__ import annotations

from guardian.runtime.context import CHILD_STATE
from guardian.runtime.parts import BasePart
from guardian.runtime.supervisor.child_record import write_record
from guardian.runtime.supervisor.process import spawn_process
from guardian.runtime.supervisor.supervisor import FATAL, StartCheck, Supervisor


class SupervisorPart(BasePart):
    """The foreground of `guardian run -- CMD`: :meth:`run` owns the main thread until a stop."""

    name = "supervisor"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.supervisor: Supervisor | None = None
        self.first_start = True

    def start(self) -> None:
        ctx = self.ctx
        self.supervisor = ctx.child = Supervisor(ctx.cmd, ctx.config, preflight=self.preflight,
                                                 alerter=ctx.alerter, on_state_change=self.on_state_change,
                                                 spawn=self.spawn)

    def spawn(self, cmd):
        """Start the child (it dies with guardian: PR_SET_PDEATHSIG) and record it for a successor."""
        process = spawn_process(cmd)
        try:
            write_record(self.ctx.paths.child_record_file, process.pid, list(cmd))
        except OSError as exc:
            self.ctx.log.warning("child_record_failed", error=str(exc))
        return process

    def run(self) -> int:
        return self.supervisor.run_forever()

    def notify_signal(self, signum: int) -> None:
        self.supervisor.notify_signal(signum)

    def preflight(self) -> StartCheck:
        # The store was just checked at start-up; every restart after that checks again. The child
        # starts even when the store stays unloadable: contextd decides (and the alerts went out).
        if self.first_start:
            self.first_start = False
            return StartCheck(ok=True, detail="checked at start-up")
        result = self.ctx.repair()
        return StartCheck(ok=True, repaired=bool(getattr(result, "actions", None)))

    def on_state_change(self, old: str, new: str, snapshot: dict) -> None:
        self.ctx.log.info("child_state", old=old, new=new)
        self.ctx.metrics.set_child(new, snapshot.get("restarts", 0))
        self.ctx.emit(CHILD_STATE, old=old, new=new, snapshot=snapshot)

    def status(self) -> dict:
        if self.supervisor is None:
            return {}
        snap = self.supervisor.snapshot()
        return {"child": {**snap, "fatal": snap["state"] == FATAL, "cmd": self.ctx.cmd}}

    def health(self) -> dict:
        if self.supervisor is None:
            return {}
        child = self.supervisor.snapshot()
        fatal = child["state"] == FATAL
        return {"healthy": not fatal, "status": "fatal" if fatal else "ok", "child": child}
