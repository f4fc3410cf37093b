"""guardian restore: put the store (or one collection) back as it was at a snapshot."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from guardian.commands.output import human_bytes, print_json, require_store
from guardian.errors import ExitCode, GuardianError, Refused, StoreError
from guardian.local.fsutil import ensure_dir
from guardian.runtime.control import control_request
from guardian.snapshots.progress import Progress
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore import (check_loadable, choose_snapshot, id_time, read_snapshot, resolve_scope,
                                        restore_store)
from guardian.snapshots.restore_inputs import gather_inputs, known_names
from guardian.snapshots.restore_target import restore_to_folder
from guardian.snapshots.timespec import parse_time

HELP = "restore the store (or one collection) to the newest snapshot at or before --at TIME"


def add_arguments(parser) -> None:
    parser.add_argument("--at", required=True, metavar="TIME",
                        help="latest | a snapshot id (see `guardian snapshots`) | ISO 8601 time (no zone = local) "
                             "| an age such as 90m, 2h, 1d, 1w")
    parser.add_argument("--target", metavar="DIR",
                        help="restore into this new or empty folder instead, leaving the store alone")
    parser.add_argument("--collection", metavar="NAME", help="restore only this collection")
    parser.add_argument("--dry-run", action="store_true", help="show what would be done; change nothing")
    parser.add_argument("--force", action="store_true",
                        help="do not ask before replacing or moving aside files (they go to quarantine)")
    parser.add_argument("--allow-damaged", action="store_true",
                        help="also write snapshot copies chromem would refuse (by default they are left out)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_replica_arguments(parser, "restore from this replica (no local state needed: a new machine)")


def add_replica_arguments(parser, what: str) -> None:
    """--from URL and --key-file, shared by restore, snapshots and verify."""
    parser.add_argument("--from", dest="from_replica", metavar="REPLICA",
                        help=f"{what}: s3://bucket/prefix?endpoint=…, file:///folder")
    parser.add_argument("--key-file", dest="key_file", metavar="FILE",
                        help="the replica key (default: replica_key_file, ~/.config/guardian/replica.key)")


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


def sidecar_running(ctx) -> bool:
    """Is a sidecar answering on this store's control socket? (It must do the restore itself.)"""

    if not ctx.paths.control_socket.exists():
        return False
    try:
        control_request(ctx.paths.control_socket, "ping", timeout=2.0)
    except GuardianError:
        return False
    return True


def restore_through_sidecar(args, ctx, at) -> int:
    """Plan here (so --force and --dry-run mean the same), then let the sidecar stop its child,
    restore, check and start the child again."""
    plan = restore_store(ctx.paths, at, args.collection, dry_run=True, check_load=False).plan
    confirm = make_confirm(args.force)
    if confirm is not None and (plan.counts()["replace"] or plan.counts()["move_aside"]) and not confirm(plan):
        raise Refused("restore cancelled; nothing was changed", "pass --force to skip the question")
    answer = control_request(ctx.paths.control_socket, "restore", timeout=600.0,
                             at=at.isoformat() if at else None, collection=args.collection,
                             allow_damaged=bool(args.allow_damaged))
    result = answer["restore"]
    if args.json:
        print_json({**result, "through_sidecar": True, "child_paused": answer.get("child_paused")})
    else:
        counts = result["counts"]
        print(f"restored through the running sidecar to snapshot {result['snapshot']} "
              f"({counts['write']} written, {counts['replace']} replaced, {counts['move_aside']} moved aside)"
              + ("; its child was stopped and started again" if answer.get("child_paused") else ""))
        print_good_copies(result)
        _print_refused(result.get("refused_damaged", []))
        verdict = "yes" if result["loadable"] else f"NO ({result['load_error']})"
        print(f"  chromem will load the store: {verdict}")
    return ExitCode.OK if result["loadable"] is not False else ExitCode.UNLOADABLE


SNAPSHOT_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-z]+$")


def resolve_at(text: str, repo: Repository | None) -> datetime | None:
    """--at as an instant: a snapshot id names its own time exactly (ids sort by time), else a time."""
    if SNAPSHOT_ID.match(text.strip()):
        snapshot_id = text.strip()
        if repo is not None and snapshot_id not in repo.list_ids():
            raise Refused(f"there is no snapshot {snapshot_id} of this store",
                          "copy an id from `guardian snapshots`")
        return id_time(snapshot_id)
    return parse_time(text, datetime.now(timezone.utc))


def run(args, ctx) -> int:
    if args.from_replica:  # an id names its own time; the replica says whether it has it
        return restore_from_replica(args, ctx, resolve_at(args.at, None))
    at = resolve_at(args.at, Repository(ctx.paths.snapshots))
    if args.target:
        return restore_into_target(args, ctx, at)
    if args.dry_run and not ctx.paths.store.is_dir():
        return dry_run_without_store(args, ctx, at)
    recreate_missing_store(ctx)
    if not args.dry_run and sidecar_running(ctx):
        return restore_through_sidecar(args, ctx, at)
    progress = Progress("restore", enabled=False if args.json else None)
    result = restore_store(ctx.paths, at, args.collection, dry_run=args.dry_run,
                           confirm=make_confirm(args.force), progress=progress,
                           check_load=not args.dry_run, allow_damaged=bool(args.allow_damaged))
    if args.json:
        print_json(result.to_dict())
    else:
        _print_human(result)
    return ExitCode.OK if result.loadable is not False else ExitCode.UNLOADABLE


def dry_run_without_store(args, ctx, at) -> int:
    """A dry run of a store that is gone: planned against an empty folder (everything would be
    written), and the store folder is not created (a dry run writes nothing)."""
    from guardian.commands.output import require_store

    if not Repository(ctx.paths.snapshots).list_ids():
        require_store(ctx, "restore")
    with contextlib.ExitStack() as stack:
        paths = planning_paths(stack, ctx.paths)
        result = restore_store(paths, at, args.collection, dry_run=True, check_load=False)
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"note: the store {ctx.paths.store} is missing; a restore would create it", file=sys.stderr)
        _print_human(result)
    return ExitCode.OK


def planning_paths(stack: contextlib.ExitStack, paths):
    """``paths``, or the same with an empty temporary folder as the store when it does not exist."""
    import tempfile

    from guardian.local.paths import StatePaths

    if paths.store.is_dir():
        return paths
    return StatePaths(store=Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="guardian-no-store-"))),
                      root=paths.root)


def recreate_missing_store(ctx) -> None:
    """No store folder: with snapshots, the store was lost and restoring it is the point (its
    folder is created); without any, there is nothing to restore yet (the no-store-yet rule)."""
    store = ctx.paths.store
    if os.path.lexists(store):
        return
    if not Repository(ctx.paths.snapshots).list_ids():
        require_store(ctx, "restore")
    if not store.parent.is_dir():
        raise StoreError(f"the store {store} and its parent folder are missing", "create the parent folder first")
    ensure_dir(store, 0o755)
    print(f"note: the store {store} was missing; created it to restore into", file=sys.stderr)


def restore_into_target(args, ctx, at) -> int:
    """--target: write the snapshot into another folder; the store (and a running sidecar) is not touched."""
    repo = Repository(ctx.paths.snapshots)
    snapshot_id = choose_snapshot(repo, at)
    manifest = read_snapshot(repo, snapshot_id)
    scope = resolve_scope(manifest, args.collection)
    inputs = gather_inputs(repo, manifest, scope, known_names(ctx.paths.catalog_file, args.collection),
                           bool(args.allow_damaged))
    result = restore_to_folder(ctx.paths, snapshot_id, manifest, scope, args.collection, Path(args.target),
                               dry_run=args.dry_run, inputs=inputs)
    if not args.dry_run:
        result.loadable, result.load_error = check_loadable(result.target, manifest.compress)
    if args.json:
        print_json(result.to_dict())
    else:
        what = f"collection {args.collection!r}" if args.collection else "the store"
        verb = "would write" if args.dry_run else "wrote"
        print(f"{verb} {what} as of snapshot {snapshot_id} "
              f"({result.snapshot_time.astimezone().isoformat(timespec='seconds')}) into {result.target}: "
              f"{result.files} files, {human_bytes(result.bytes)}; the store was not touched")
        print_good_copies(result.to_dict())
        _print_refused(result.refused_damaged)
        if result.loadable is not None:
            print(f"  chromem will load {result.target}: "
                  f"{'yes' if result.loadable else 'NO (' + result.load_error + ')'}")
    return ExitCode.OK if result.loadable is not False else ExitCode.UNLOADABLE


def _print_human(result) -> None:
    counts = result.plan.counts()
    what = f"collection {result.collection!r}" if result.collection else "the store"
    verb = "would restore" if result.dry_run else "restored"
    print(f"{verb} {what} to snapshot {result.snapshot_id} "
          f"({result.snapshot_time.astimezone().isoformat(timespec='seconds')}): "
          f"{counts['write']} written, {counts['replace']} replaced, {counts['move_aside']} moved aside, "
          f"{counts['keep']} unchanged, {counts['skip']} skipped")
    if result.skipped:
        print(f"  warning: passed over {len(result.skipped)} newer damaged snapshot(s): {', '.join(result.skipped)} "
              "(run `guardian verify`)")
    print_good_copies(result.to_dict())
    if result.dry_run:
        for action in result.plan.actions:
            if action.kind != "keep":
                print(f"  {action.kind:10} {action.path}{'/' if action.is_dir else ''}"
                      f"{'  (' + action.reason + ')' if action.reason else ''}")
        return
    _print_refused(result.refused_damaged)
    if result.quarantined:
        print(f"  {len(result.quarantined)} quarantine entries hold what was replaced or moved aside "
              f"(`guardian quarantine list`)")
    if result.loadable is None:
        print(f"  could not check whether chromem will load the store: {result.load_error}")
    elif result.loadable:
        print("  chromem will load the store: yes")
    else:
        print(f"  chromem will load the store: NO ({result.load_error}); run `guardian check`")


def restore_from_replica(args, ctx, at) -> int:
    """Fetch the chosen snapshot from the replica into this store's local repository (creating the
    state dir on a new machine), then restore it like a local one, into the store folder (created
    once the fetch has succeeded, and removed again if the restore fails and it is still empty).
    A damaged replica restores what is intact; the files left out are named, exit 1."""
    from guardian.replicas.fetch import choose_readable_remote, fetch_snapshot  # replicas: only for --from
    from guardian.replicas.layout import id_time
    from guardian.replicas.replica import Replica
    from guardian.snapshots.repository import Repository

    replica = Replica.open(args.from_replica, ctx.config, key_file=args.key_file)
    snapshot_id, skipped = choose_readable_remote(replica, at)
    if skipped:
        print(f"warning: passed over {len(skipped)} newer snapshot(s) whose record on {replica.display} is damaged: "
              f"{', '.join(skipped)}", file=sys.stderr)
    if args.dry_run:
        return dry_run_from_replica(args, ctx, replica, snapshot_id)
    ctx.paths.ensure()
    progress = Progress("fetch", enabled=False if args.json else None)
    fetched = fetch_snapshot(replica, Repository(ctx.paths.snapshots), ctx.paths.lock_file, snapshot_id, progress)
    if not args.json:
        print(f"fetched snapshot {snapshot_id} from {replica.display}: {fetched.objects_fetched} objects "
              f"({fetched.bytes_fetched} bytes), {fetched.objects_reused} already here")
    with created_folders(ctx.paths.store):
        if sidecar_running(ctx):
            code = restore_through_sidecar(args, ctx, id_time(snapshot_id))
            _print_fetch_losses(fetched, replica, args.json)
            return max(code, ExitCode.WARNINGS if fetched.missing or fetched.older_copies or fetched.rebuilt else 0)
        result = restore_store(ctx.paths, None, args.collection, dry_run=False, confirm=make_confirm(args.force),
                               progress=Progress("restore", enabled=False if args.json else None),
                               check_load=True, snapshot_id=snapshot_id)
    if args.json:
        print_json({**result.to_dict(), "replica": replica.display, "fetch": fetched.to_dict(),
                    "missing": fetched.missing, "replica_records_damaged": skipped})
    else:
        _print_human(result)
        _print_fetch_losses(fetched, replica, False)
    if result.loadable is False:
        return ExitCode.UNLOADABLE
    return ExitCode.WARNINGS if fetched.missing or fetched.older_copies or fetched.rebuilt else ExitCode.OK


@contextlib.contextmanager
def created_folders(store: Path):
    """Create the store folder (and missing parents) for a restore; if the restore fails, the
    folders it created are removed again when still empty: a failed restore leaves nothing behind."""
    made = []
    folder = Path(os.path.abspath(store))
    while not os.path.lexists(folder):
        made.append(folder)
        folder = folder.parent
    for path in reversed(made):
        os.mkdir(path, 0o700)
    try:
        yield
    except BaseException:
        for path in made:
            with contextlib.suppress(OSError):
                os.rmdir(path)   # only when empty
        raise


def _print_fetch_losses(fetched, replica, as_json: bool) -> None:
    """What the replica's damage cost this restore (stderr; the JSON has it all under "fetch")."""
    if as_json or not (fetched.damaged_objects or fetched.missing or fetched.older_copies or fetched.rebuilt):
        return
    err = sys.stderr
    for item in fetched.damaged_objects:
        print(f"warning: replica object {item['object']} {item['problem']}", file=err)
    for path, older in sorted(fetched.older_copies.items()):
        print(f"warning: {path}: its copy in this snapshot is damaged on the replica; restored the older "
              f"copy from snapshot {older}", file=err)
    for path in fetched.rebuilt:
        print(f"warning: {path}: collection metadata lost on the replica; rebuilt from the collection's name "
              "with empty collection metadata", file=err)
    if fetched.missing:
        count = len(fetched.missing)
        files = f"{count} files of snapshot {fetched.snapshot_id} have" if count != 1 else \
            f"1 file of snapshot {fetched.snapshot_id} has"
        print(f"MISSING: {files} no intact copy on {replica.display}, left out (the rest of the store restores "
              "and loads):", file=err)
        for path in fetched.missing:
            print(f"  missing: {path}", file=err)
    print("hint: run `guardian replicate` on the machine that pushes to this replica: it pushes the damaged "
          "objects again", file=err)


def dry_run_from_replica(args, ctx, replica, snapshot_id: str) -> int:
    """The plan of a restore from a replica, writing nothing here: a snapshot this machine already
    holds is planned from its own repository; any other is fetched into a temporary folder (removed
    afterwards). A store that does not exist yet is planned as an empty folder."""
    from guardian.local.paths import StatePaths
    from guardian.replicas.fetch import scratch_copy

    fetched = None
    with contextlib.ExitStack() as stack:
        if snapshot_id in Repository(ctx.paths.snapshots).list_ids():
            paths = ctx.paths
        else:
            folder, fetched = stack.enter_context(
                scratch_copy(replica, snapshot_id, Progress("fetch", enabled=False if args.json else None)))
            paths = StatePaths(store=ctx.paths.store, root=folder)
        paths = planning_paths(stack, paths)
        result = restore_store(paths, None, args.collection, dry_run=True, check_load=False, snapshot_id=snapshot_id)
    if args.json:
        print_json({**result.to_dict(), "replica": replica.display,
                    "fetch": fetched.to_dict() if fetched else None, "written_locally": False})
    else:
        where = "a temporary folder, removed again" if fetched else "this machine's own copy of it"
        print(f"dry run: planned snapshot {snapshot_id} of {replica.display} from {where}; nothing was written")
        _print_human(result)
        if fetched:
            _print_fetch_losses(fetched, replica, False)
    return ExitCode.OK


def print_good_copies(facts: dict) -> None:
    """What a restore writes where its snapshot holds no good copy, and the collections it leaves out."""
    for item in facts.get("substituted", []):
        print(f"  {item['path']}: the snapshot holds no good copy of it; the one restored is from {item['source']}")
    for item in facts.get("left_out", []):
        print(f"  left out {item['folder']}/: {item['documents']} documents and no good metadata in any snapshot "
              "nor a known name that hashes to the folder (chromem would refuse the store); they stay in the "
              "snapshot: --allow-damaged writes them, then `guardian check --repair --name NAME`")


def _print_refused(refused: list[dict]) -> None:
    for item in refused:
        print(f"  not written: {item['path']} (its snapshot copy would not load in chromem: {item['reason']}; "
              "pass --allow-damaged to write it anyway, or pick another --at)")
