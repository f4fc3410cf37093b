"""`guardian exec -- CMD ARGS...`: pre-flight and repair the store, then become CMD.

Made for MCP clients that launch contextd over stdio. stdout belongs to the child's protocol:
guardian writes nothing to it; logs go to stderr (and the log file). If the store cannot be made
loadable, guardian still execs CMD (contextd decides) but logs and alerts loudly.

When a sidecar (`guardian run`) guards the store, exec asks it for chromem's verdict over the
control socket instead of walking the store (the sidecar already watches every change), and asks
it to repair when the verdict is bad. Without one, the pre-flight runs here; several execs started
at once queue on the store lock and the first one repairs (the others find nothing left to do).
"""

from __future__ import annotations

import os
import sys

from guardian.errors import ExitCode, GuardianError, UsageError

HELP = "pre-flight + repair the store, then replace guardian with CMD (stdin/stdout untouched)"


def add_arguments(parser) -> None:
    parser.add_argument("cmd", nargs="...", help="-- CMD ARGS... the server to run (e.g. -- contextd --mcp)")


def child_command(raw: list[str], command: str = "exec") -> list[str]:
    cmd = raw[1:] if raw and raw[0] == "--" else list(raw)
    if not cmd:
        raise UsageError("no command given", f"use: guardian {command} -- contextd --mcp")
    return cmd


def verdict_from_sidecar(ctx, log) -> bool:
    """True when a running sidecar vouched for the store (asking it to repair first if needed)."""
    if not os.path.exists(ctx.paths.control_socket):
        return False
    from guardian.runtime.control import control_request

    try:
        verdict = control_request(ctx.paths.control_socket, "verdict", timeout=10.0)
        if verdict.get("loadable") is None:
            return False
        if not verdict["loadable"]:
            log.warning("sidecar_reports_unloadable", error=verdict.get("error"), action="asking it to repair")
            verdict = control_request(ctx.paths.control_socket, "repair", timeout=120.0)
    except GuardianError as exc:
        log.info("sidecar_not_asked", reason=exc.message)
        return False
    if verdict.get("loadable") is False:
        log.critical("store_unloadable_after_repair", hint="run `guardian check` and `guardian restore --at <time>`")
    log.info("verdict_from_sidecar", loadable=verdict.get("loadable"))
    return True


def run(args, ctx) -> int:
    cmd = child_command(args.cmd)
    from guardian.logs import LazyLogger

    log = LazyLogger("guardian.exec")   # structlog only if a line is written (not below the level)
    if not verdict_from_sidecar(ctx, log):
        from guardian.runtime.preflight import preflight_and_alert

        try:
            preflight_and_alert(ctx.config, ctx.paths, log)
        except GuardianError as exc:  # never block the child: contextd decides
            log.error("preflight_failed", error=exc.message, hint=exc.hint)
    sys.stderr.flush()
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        print(f"error: cannot run {cmd[0]!r}: {exc.strerror} (hint: check the command and PATH)", file=sys.stderr)
        return ExitCode.NOT_RUNNABLE
    return ExitCode.OK  # not reached
