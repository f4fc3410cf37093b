"""guardian restore: put the store (a collection, or chosen memories) back as it was at a snapshot.

The command only chooses the pipeline's parts from its flags (``guardian.restoring``: a source, a
destination, an executor) and presents the outcome.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timezone

from guardian.commands.output import format_table, human_bytes, print_json, require_store
from guardian.errors import ExitCode, GuardianError, Refused, RestoreError, UsageError
from guardian.restoring.destinations import StoreInPlace, TargetFolder
from guardian.restoring.outcome import RestoreOutcome
from guardian.restoring.pipeline import InProcess, Restore, ThroughSidecar
from guardian.restoring.request import RestoreRequest
from guardian.restoring.sources import LocalSource, ReplicaSource
from guardian.restoring.undo import undo_restore
from guardian.runtime.control import control_request
from guardian.snapshots.progress import Progress
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore import id_time
from guardian.snapshots.timespec import parse_time

LAST = "last"
HELP = "restore the store (a collection, or chosen memories) to the newest snapshot at or before --at TIME"


def add_arguments(parser) -> None:
    parser.add_argument("--at", metavar="TIME",
                        help="latest | a snapshot id (see `guardian snapshots`) | ISO 8601 time (no zone = local) "
                             "| an age such as 90m, 2h, 1d, 1w")
    parser.add_argument("--target", metavar="DIR",
                        help="restore into this new or empty folder instead, leaving the store alone")
    parser.add_argument("--collection", metavar="NAME",
                        help="restore only this collection (with --id: look for the memories only there)")
    parser.add_argument("--id", dest="ids", action="append", metavar="ID",
                        help="restore only this memory (repeat for more); nothing else in the store is touched")
    parser.add_argument("--dry-run", action="store_true", help="show what would be done; change nothing")
    parser.add_argument("--force", action="store_true",
                        help="do not ask before replacing or moving aside files (they go to quarantine), and "
                             "restore even while other processes use the store (restart them afterwards)")
    parser.add_argument("--no-child-restart", dest="restart_child", action="store_false",
                        help="under `guardian run`: leave the child running (it then counts as a process "
                             "using the store: refused without --force)")
    parser.add_argument("--allow-damaged", action="store_true",
                        help="also write snapshot copies chromem would refuse (by default they are left out)")
    parser.add_argument("--undo", nargs="?", const=LAST, metavar="RESTORE_ID",
                        help="put the store back as it was before a restore (default: the last one): what it moved "
                             "aside or replaced comes back, what it wrote goes to quarantine")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every file, not one line per collection")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_replica_arguments(parser, "restore from this replica (no local state needed: a new machine)")


def add_replica_arguments(parser, what: str) -> None:
    """--from URL and --key-file, shared by restore, snapshots and verify."""
    parser.add_argument("--from", dest="from_replica", metavar="REPLICA",
                        help=f"{what}: s3://bucket/prefix?endpoint=…, file:///folder")
    parser.add_argument("--key-file", dest="key_file", metavar="FILE",
                        help="the replica key (default: replica_key_file, ~/.config/guardian/replica.key)")


# ---- choosing the parts -------------------------------------------------------------------------

SNAPSHOT_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-z]+$")


def resolve_at(text: str, repo: Repository | None) -> datetime | None:
    """--at as an instant: a snapshot id names its own time exactly (ids sort by time), else a time."""
    if SNAPSHOT_ID.match(text.strip()):
        snapshot_id = text.strip()
        if repo is not None and snapshot_id not in repo.list_ids():
            raise RestoreError(f"there is no snapshot {snapshot_id} of this store",
                               "copy an id from `guardian snapshots`")
        return id_time(snapshot_id)
    return parse_time(text, datetime.now(timezone.utc))


def build_restore(args, ctx) -> Restore:
    """The pipeline the flags ask for: a source (this store's snapshots | --from a replica), a
    destination (the store | --target), and what to bring back (--collection, --id)."""
    if args.from_replica:   # an id names its own time; the replica says whether it has it
        from guardian.replicas.replica import Replica  # replicas: only for --from

        replica = Replica.open(args.from_replica, ctx.config, key_file=args.key_file)
        source = ReplicaSource(replica, ctx.paths, Progress("fetch", enabled=False if args.json else None))
        at = resolve_at(args.at, None)
    else:
        repo = Repository(ctx.paths.snapshots)
        at = resolve_at(args.at, repo)
        if not os.path.lexists(ctx.paths.store) and not args.target and not repo.list_ids():
            require_store(ctx, "restore")   # no store and no snapshot: nothing to restore yet
        source = LocalSource(ctx.paths)
    destination = (TargetFolder(ctx.paths, args.target) if args.target
                   else StoreInPlace(ctx.paths, create_parents=bool(args.from_replica)))
    request = RestoreRequest(at=at, collection=args.collection, ids=tuple(args.ids or ()),
                             allow_damaged=bool(args.allow_damaged), force=bool(args.force),
                             restart_child=args.restart_child)
    return Restore(source, destination, request)


def sidecar_running(ctx) -> bool:
    """Is a sidecar answering on this store's control socket? (It must do the restore itself.)"""
    if not ctx.paths.control_socket.exists():
        return False
    try:
        control_request(ctx.paths.control_socket, "ping", timeout=2.0)
    except GuardianError:
        return False
    return True


def choose_executor(restore: Restore, ctx):
    """The sidecar guarding this store restores it (it owns the child and the lock); a --target
    touches nothing it guards, so this process writes it."""
    if isinstance(restore.destination, StoreInPlace) and sidecar_running(ctx):
        return ThroughSidecar(lambda wire: control_request(ctx.paths.control_socket, "restore", timeout=600.0,
                                                           **wire))
    return InProcess()


def _describe(plan) -> str:
    counts = plan.counts()
    return (f"{counts['replace']} files would be replaced and {counts['move_aside']} moved aside "
            f"(to quarantine, nothing is deleted)")


def make_confirm(force: bool, stdin=None, stderr=None):
    stdin, stderr = stdin or sys.stdin, stderr or sys.stderr
    if force:
        return None

    def confirm(plan) -> bool:
        if not stdin.isatty():
            raise Refused(f"the store changed since snapshot {plan.snapshot_id}: {_describe(plan)}",
                          "pass --force to restore anyway (undo with `guardian quarantine`), "
                          "or --dry-run to see the plan")
        stderr.write(f"The store changed since snapshot {plan.snapshot_id}: {_describe(plan)}. Continue? [y/N] ")
        stderr.flush()
        return stdin.readline().strip().lower() in ("y", "yes")
    return confirm


def run(args, ctx) -> int:
    if args.undo is not None:
        return undo(args, ctx)
    if not args.at:
        raise UsageError("restore needs --at TIME (or --undo to put back what a restore changed)",
                         "e.g. `guardian restore --at latest --dry-run`")
    restore = build_restore(args, ctx)
    if args.dry_run:
        outcome = restore.plan()
    else:
        outcome = restore.run(choose_executor(restore, ctx), make_confirm(args.force),
                              Progress("restore", enabled=False if args.json else None))
    if outcome.created_store:
        print(f"note: the store {ctx.paths.store} was missing; created it to restore into", file=sys.stderr)
    if args.json:
        print_json(outcome.to_dict())
    else:
        present(outcome, ctx, verbose=args.verbose)
    if outcome.loadable is False:
        return ExitCode.UNLOADABLE
    return ExitCode.WARNINGS if outcome.left_alone else ExitCode.OK   # a live writer's file: its write wins


def undo(args, ctx) -> int:
    """--undo [ID]: through the sidecar when one guards the store (it stops its child around it)."""
    if args.at or args.target or args.ids or args.collection or args.from_replica or args.dry_run:
        raise UsageError("--undo takes no --at, --target, --id, --collection, --from or --dry-run",
                         "`guardian restore --undo` (the last restore) or `--undo RESTORE_ID`")
    restore_id = None if args.undo == LAST else args.undo
    if sidecar_running(ctx):
        result = control_request(ctx.paths.control_socket, "undo_restore", timeout=600.0, restore_id=restore_id,
                                 force=bool(args.force), restart_child=args.restart_child)
    else:
        result = undo_restore(ctx.paths, restore_id, force=bool(args.force), restart_child=args.restart_child).to_dict()
    if args.json:
        print_json(result)
    else:
        print(f"undid restore {result['undone']} (of snapshot {result['snapshot']}): {len(result['put_back'])} "
              f"put back from quarantine, {len(result['quarantine_entries'])} restored files or folders moved to "
              "quarantine" + ("; the child was stopped and started again" if result["child_restarted"] else ""))
        for item in result["left_alone"]:
            print(f"  left as it is: {item['path']} ({item['reason']})")
        print_users(result["users"], False, "undo")
        verdict = "yes" if result["loadable"] else f"NO ({result['load_error']})"
        print(f"  chromem will load the store: {verdict}")
    if result["loadable"] is False:
        return ExitCode.UNLOADABLE
    return ExitCode.WARNINGS if result["left_alone"] else ExitCode.OK


# ---- presenting the outcome ---------------------------------------------------------------------

def present(outcome: RestoreOutcome, ctx, verbose: bool = False) -> None:
    store_missing = outcome.destination == "store" and not ctx.paths.store.is_dir()
    if outcome.dry_run and store_missing:
        print(f"note: the store {ctx.paths.store} is missing; a restore would create it", file=sys.stderr)
    print_source(outcome)
    print(headline(outcome))
    if outcome.skipped:
        print(f"  warning: passed over {len(outcome.skipped)} newer damaged snapshot(s): {', '.join(outcome.skipped)} "
              "(run `guardian verify`)")
    print_changes(outcome, verbose)
    for item in outcome.refused_damaged:
        print(f"  not written: {item['path']} (its snapshot copy would not load in chromem: {item['reason']}; "
              "pass --allow-damaged to write it anyway, or pick another --at)")
    for item in outcome.left_alone:
        print(f"  not written: {item['reason']}")
    print_users(outcome.users, outcome.dry_run)
    if outcome.dry_run:
        return
    if outcome.quarantined_total:
        print(f"  {outcome.quarantined_total} quarantine entries hold what was replaced or moved aside "
              f"(`guardian quarantine list`)")
    if outcome.restore_id:
        print(f"  undo it with `guardian restore --undo {outcome.restore_id}`")
    where = "the store" if outcome.destination == "store" else str(outcome.target)
    if outcome.loadable is None:
        print(f"  could not check whether chromem will load {where}: {outcome.load_error}")
    elif outcome.loadable:
        print(f"  chromem will load {where}: yes")
    else:
        print(f"  chromem will load {where}: NO ({outcome.load_error})"
              + ("; run `guardian check`" if outcome.destination == "store" else ""))


def print_users(users: list[dict], dry_run: bool, what: str = "restore") -> None:
    """The processes that use the store and do not see a restore until they restart."""
    if not users:
        return
    if dry_run:
        print(f"  {len(users)} process(es) use this store; a restore is refused without --force "
              "(a child under `guardian run` is stopped and started again around it):")
    else:
        print(f"  {len(users)} process(es) using this store did not see the {what}; restart them now "
              "(until then they keep the old store in memory and may write it back):")
    for user in users:
        print(f"    pid {user['pid']}: {user['command']} - {user['why']}")


def print_source(outcome: RestoreOutcome) -> None:
    notes = outcome.notes
    if "replica" not in notes:
        return
    fetched = notes.get("fetch")
    if outcome.dry_run:
        where = "a temporary folder, removed again" if fetched else "this machine's own copy of it"
        print(f"dry run: planned snapshot {outcome.snapshot_id} of {notes['replica']} from {where}; "
              "nothing was written")
    elif fetched:
        print(f"fetched snapshot {outcome.snapshot_id} from {notes['replica']}: {fetched['objects_fetched']} objects "
              f"({fetched['bytes_fetched']} bytes), {fetched['objects_reused']} already here")


def headline(outcome: RestoreOutcome) -> str:
    counts = outcome.counts()
    if outcome.ids:
        what = f"{len(outcome.ids)} memor{'y' if len(outcome.ids) == 1 else 'ies'}"
    elif outcome.collection:
        what = f"collection {outcome.collection!r}"
    else:
        what = "the store"
    when = f"snapshot {outcome.snapshot_id} ({outcome.snapshot_time.astimezone().isoformat(timespec='seconds')})"
    if outcome.destination == "target":
        files, size = outcome.written()
        verb = "would write" if outcome.dry_run else "wrote"
        return (f"{verb} {what} as of {when} into {outcome.target}: {files} files, {human_bytes(size)}; "
                "the store was not touched")
    verb = "would restore" if outcome.dry_run else "restored"
    sidecar = ""
    if outcome.notes.get("through_sidecar"):
        sidecar = " through the running sidecar" + (
            " (its child was stopped and started again)" if outcome.notes.get("child_restarted") else "")
    return (f"{verb} {what} to {when}{sidecar}: {counts['write']} written, {counts['replace']} replaced, "
            f"{counts['move_aside']} moved aside, {counts['keep']} unchanged, {counts['skip']} skipped")


ROW_KINDS = (("write", "WRITTEN"), ("replace", "REPLACED"), ("move_aside", "MOVED ASIDE"), ("keep", "UNCHANGED"),
             ("skip", "SKIPPED"))


def print_changes(outcome: RestoreOutcome, verbose: bool) -> None:
    """One line per collection something happens to (a 100k store is not 100k lines); every file
    with ``-v``."""
    if outcome.destination == "target" and not verbose:
        return
    rows = [row for row in outcome.per_collection()
            if any(row[kind] for kind, _ in ROW_KINDS if kind != "keep")]
    if rows and not verbose:
        table = format_table(["collection", "folder"] + [label for _, label in ROW_KINDS],
                             [[row["name"] or ("(store root)" if not row["folder"] else "-"), row["folder"]]
                              + [row[kind] for kind, _ in ROW_KINDS] for row in rows])
        print("\n".join("  " + line for line in table.splitlines()))
        print("  (-v lists every file)")
    if not verbose:
        return
    actions = outcome.actions()
    if actions is None:
        print("  (the sidecar's answer did not list every file: run with --json, or --dry-run -v, to see them)")
        return
    for action in actions:
        print(f"  {action['action']:10} {action['path']}{'/' if action.get('folder') else ''}"
              f"{'  (' + action['reason'] + ')' if action.get('reason') else ''}")
