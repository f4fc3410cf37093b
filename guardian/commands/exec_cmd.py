"""`guardian exec -- CMD ARGS...`: pre-flight and repair the store, then become CMD.

Made for MCP clients that launch contextd over stdio. stdout belongs to the child's protocol:
guardian writes nothing to it; logs go to stderr (and the log file). If the store cannot be made
loadable, guardian still execs CMD (contextd decides) but logs and alerts loudly.
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


def run(args, ctx) -> int:
    cmd = child_command(args.cmd)
    from guardian.logs import get_logger
    from guardian.runtime.preflight import preflight_and_alert

    log = get_logger("guardian.exec")
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
