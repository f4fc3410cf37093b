"""guardian console: the link that opens the running sidecar's pages in a browser (signed in)."""

from __future__ import annotations

import webbrowser

from guardian.commands.output import print_json
from guardian.errors import ExitCode, SupervisorError
from guardian.runtime.console_link import console_base, console_link
from guardian.runtime.status_facts import sidecar_status

HELP = "print the link that opens the running sidecar's console in a browser (--open opens it)"


def add_arguments(parser) -> None:
    parser.add_argument("--open", action="store_true", help="open it in the default browser too")
    parser.add_argument("--json", action="store_true", help='print {"url", "console"} as JSON')


def run(args, ctx) -> int:
    status = sidecar_status(ctx.paths)
    base = console_base(status) if status is not None else None
    if base is None:
        raise SupervisorError(f"no sidecar guards {ctx.paths.store}, so no console is served",
                              "start one with `guardian run` (or `guardian run -- contextd ...`)")
    link = console_link(ctx.paths, status)
    if link is None:
        raise SupervisorError(f"the console's secret cannot be read from {ctx.paths.console_secret}",
                              "run this as the user who runs the sidecar")
    if args.json:
        print_json({"url": link, "console": f"{base}/console/"})
    else:
        print(link)
        print("(opens the console signed in; keep it to yourself: whoever has it can restore through the sidecar)")
    if args.open:
        webbrowser.open(link)
    return ExitCode.OK
