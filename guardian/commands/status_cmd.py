"""`guardian status`: the sidecar, the store's health, snapshots and the last repair, at a glance.

Exit codes (for scripts and monitoring): 0 healthy; 1 warnings (stale or no snapshots, store loads
with warnings, sidecar not running); 3 the store would not load; 4 the supervised child is FATAL;
2 usage error.
"""

from __future__ import annotations

from guardian.commands.output import print_json
from guardian.runtime.status import render_status
from guardian.runtime.status_facts import collect_status

HELP = "show the sidecar, store health, snapshots and last repair (exit 0 ok, 1 warn, 3 unloadable, 4 FATAL)"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args, ctx) -> int:
    ctx.paths.ensure()
    status = collect_status(ctx.config, ctx.paths)
    if args.json:
        print_json(status)
    else:
        print(render_status(status))
    return status["exit_code"]
