"""`guardian history ID`: every version of one memory across the snapshots (local, or a replica's)."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

from guardian.commands.memory_views import answer, changed_line, detail, fit, local, plural
from guardian.commands.restore_cmd import add_replica_arguments
from guardian.memories.points import snapshot_time

HELP = "every version of one memory across the snapshots: when it appeared, each change, when it went"
CHANGE_WIDTH = 9


def add_arguments(parser) -> None:
    parser.add_argument("memory_id", metavar="ID", help="the memory's ID (as contextd and `guardian find` show it)")
    parser.add_argument("--collection", metavar="NAME", help="only this collection (default: every collection)")
    parser.add_argument("--json", action="store_true",
                        help="print a list, one entry a version: snapshot, time, change, sha256, title, …")
    add_replica_arguments(parser, "read the snapshots this replica holds (fetched into a temporary folder)")


def run(args, ctx) -> int:
    from guardian.memories.history import memory_history
    from guardian.snapshots.repository import Repository

    with contextlib.ExitStack() as stack:
        if args.from_replica:
            repo = stack.enter_context(replica_copy(args, ctx))
        else:
            repo = Repository(ctx.paths.snapshots)
        history = memory_history(repo, args.memory_id, args.collection)
    return answer(args.json, history.to_list(), lambda: render(history), history.skipped, history.unreadable)


@contextlib.contextmanager
def replica_copy(args, ctx):
    """Every snapshot of the replica fetched into a temporary repository (removed afterwards): the
    local state is not written. Objects shared by snapshots are fetched once."""
    from guardian.replicas.fetch import fetch_snapshot, list_remote
    from guardian.replicas.replica import Replica
    from guardian.snapshots.repository import Repository

    replica = Replica.open(args.from_replica, ctx.config, key_file=args.key_file)
    rows = list_remote(replica)
    ids = [row["id"] for row in rows if "damaged" not in row]
    for row in rows:
        if "damaged" in row:
            print(f"warning: replica snapshot {row['id']} was passed over: {row['damaged']}", file=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="guardian-history-"))
    try:
        if not args.json:
            print(f"reading {plural(len(ids), 'snapshot')} of {replica.display}", file=sys.stderr)
        repo = Repository(folder / "snapshots")
        for snapshot_id in ids:
            fetch_snapshot(replica, repo, folder / "lock", snapshot_id)
        yield repo
    finally:
        shutil.rmtree(folder, ignore_errors=True)   # our own temporary folder


def render(history) -> list[str]:
    steps = history.steps
    collections = sorted({step.version.collection for step in steps})
    versions = sum(step.change != "removed" for step in steps)
    lines = [fit(f"memory {history.memory_id}"),
             fit(f"{plural(versions, 'version')} in {plural(history.snapshots, 'snapshot')}, "
                 f"{'collection' if len(collections) == 1 else 'collections'} {', '.join(collections)}")]
    for collection in collections:
        if len(collections) > 1:
            lines += ["", fit(collection)]
        lines.append(f"  {'SNAPSHOT'.ljust(28)}  {'LOCAL TIME'.ljust(16)}  {'CHANGE'.ljust(CHANGE_WIDTH)}TITLE")
        for step in (s for s in steps if s.version.collection == collection):
            data = step.to_dict()
            lines.append(fit(f"  {step.snapshot.ljust(28)}  {local(snapshot_time(step.snapshot))}  "
                             f"{step.change.ljust(CHANGE_WIDTH)}{data['title'] if step.change != 'removed' else ''}"))
            lines += detail(changed_line(data["fields"], data["metadata_keys"]))
    return lines
