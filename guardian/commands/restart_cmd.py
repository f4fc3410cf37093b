"""guardian restart: ask the running sidecar to restart its child; clears a FATAL state."""

from __future__ import annotations

import argparse

from guardian.commands.output import print_json
from guardian.runtime.control import control_request
from guardian.errors import ExitCode, SupervisorError

HELP = "restart the supervised child in the running sidecar (clears FATAL)"
RESTART_TIMEOUT = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the sidecar's answer as JSON")


def run(args: argparse.Namespace, ctx) -> int:
    result = control_request(ctx.paths.control_socket, "restart", timeout=RESTART_TIMEOUT)
    if isinstance(result, dict) and result.get("ok") is False:
        raise SupervisorError(f"the sidecar did not restart its child: {result.get('error', 'refused')}",
                              result.get("hint") or "a sidecar started without `-- CMD` supervises nothing")
    if args.json:
        print_json(result)
        return ExitCode.OK
    state = result.get("state") if isinstance(result, dict) else None
    print(f"restart requested; child state: {state}" if state else "restart requested")
    return ExitCode.OK
