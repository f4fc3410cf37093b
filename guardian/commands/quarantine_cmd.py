"""guardian quarantine: list what guardian took out of the store, or put an entry back."""

from __future__ import annotations

import sys

from guardian.commands.output import format_table, human_bytes, print_json
from guardian.errors import ExitCode, UsageError
from guardian.local.quarantine import Quarantine
from guardian.repair.putback import put_back

HELP = "list quarantined files (`list`) or put one back (`restore ID`) if the store stays loadable"


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("list", "restore"), help="list entries, or restore one")
    parser.add_argument("id", nargs="?", help="the entry id (for restore)")
    parser.add_argument("--replace", action="store_true",
                        help="with restore: if the path exists in the store, move that one to quarantine first")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args, ctx) -> int:
    quarantine = Quarantine(ctx.paths)
    if args.action == "list":
        return _list(quarantine, args.json)
    if not args.id:
        raise UsageError("quarantine restore needs the entry id", "see `guardian quarantine list`")
    entry, replaced = put_back(quarantine, args.id, ctx.paths, replace=args.replace)
    if args.json:
        print_json({**entry.to_dict(), "replaced_by_entry": replaced.id if replaced else None})
        return ExitCode.OK
    if replaced is not None:
        print(f"moved the current {replaced.original_path} to quarantine entry {replaced.id}")
    print(f"restored {entry.original_path} from quarantine entry {entry.id}")
    return ExitCode.OK


def _list(quarantine: Quarantine, as_json: bool) -> int:
    entries, unreadable = quarantine.listing()
    for name, reason in unreadable:  # never hidden: their files are still in the quarantine
        print(f"warning: quarantine entry {name} is unreadable ({reason}); its files stay in "
              f"{quarantine.root / name}", file=sys.stderr)
    if as_json:
        print_json([e.to_dict() for e in entries])
        return ExitCode.OK
    if not entries:
        print("the quarantine is empty")
        return ExitCode.OK
    rows = [[e.id, e.time[:19] + "Z", e.state, e.kind, e.original_path, human_bytes(e.size), e.reason]
            for e in entries]
    print(format_table(["id", "time", "state", "kind", "path", "size", "reason"], rows))
    return ExitCode.OK
