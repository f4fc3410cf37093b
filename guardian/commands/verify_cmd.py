"""guardian verify: check every snapshot manifest and blob (and with --deep, that each snapshot loads)."""

from __future__ import annotations

import os
import sys
import tempfile

from guardian.commands.output import human_bytes, print_json, state_dir_writable
from guardian.commands.restore_cmd import add_replica_arguments
from guardian.errors import ExitCode
from guardian.local.fsutil import ensure_dir
from guardian.snapshots.progress import Progress
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore_inputs import known_names
from guardian.snapshots.verify import verify_repository
from guardian.words import count

HELP = "verify the snapshot repository: manifests and blobs intact; --deep also checks each snapshot loads"


def add_arguments(parser) -> None:
    parser.add_argument("--deep", action="store_true",
                        help="also restore each snapshot into a temporary folder and check chromem would load it")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_replica_arguments(parser, "verify this replica instead (every object against its hash)")


def run(args, ctx) -> int:
    progress = Progress("verify", enabled=False if args.json else None)
    scratch = deep_scratch(ctx.paths) if args.deep else None
    if args.from_replica:
        from guardian.replicas.fetch import verify_replica  # replicas: only for --from
        from guardian.replicas.replica import Replica

        replica = Replica.open(args.from_replica, ctx.config, key_file=args.key_file)
        report = verify_replica(replica, deep=args.deep, scratch=scratch, progress=progress)
    else:
        report = verify_repository(Repository(ctx.paths.snapshots), deep=args.deep,
                                   scratch=scratch, progress=progress, names=known_names(ctx.paths.catalog_file))
    code = verdict(report, bool(args.from_replica))
    if args.json:
        print_json(report.to_dict())
        return code
    where = f"replica {replica.display}" if args.from_replica else "this store"
    if not report.snapshots:
        print(f"nothing to verify: {where} has no snapshots yet"
              + ("" if args.from_replica else " (take one with `guardian snapshot`)"))
        return code
    what = "object" if args.from_replica else "blob"
    summary = f", {len(report.deep)} restored and checked" if args.deep else ""
    recorded = (f"; {count(len(report.recorded), 'snapshot')} faithfully recorded damage in the store (what a "
                "restore of each does about it is below)") if report.recorded else ""
    print(f"{count(len(report.snapshots), 'snapshot')}, {count(report.blobs_checked, what)} checked{summary}: "
          f"{'OK' if report.ok else 'PROBLEMS FOUND'}{recorded}")
    for problem in report.problems:
        affects = ", ".join(problem["snapshots"]) or "the snapshots named by its blobs above"
        print(f"  {problem['kind']} damaged: {problem['detail']}; affects {affects}")
    for snapshot_id, items in report.recorded.items():
        for item in items:
            print(f"  snapshot {snapshot_id} recorded {item['path']}: {item['recorded']}; a restore {item['restore']}")
    for snapshot_id, deep in report.deep.items():
        print(deep_line(snapshot_id, deep))
    if report.affected:
        intact = [s for s in report.snapshots if s not in report.affected]
        print(f"  unaffected snapshots: {', '.join(intact) or 'none'}")
    return code


def verdict(report, of_replica: bool) -> ExitCode:
    """A replica object that is missing or does not match its hash is a replica problem (tampered or
    lost there: 8, as for any unusable replica); damage in the local repository, or a snapshot that
    would not load, is a finding (1)."""
    if of_replica and report.problems:
        return ExitCode.REPLICA
    return ExitCode.OK if report.ok else ExitCode.WARNINGS


def deep_scratch(paths):
    """Where --deep restores: the state dir's cache, or the system's temporary folder when the
    state dir cannot be written (the check itself only reads the repository)."""
    if not state_dir_writable(paths, "restoring into the system's temporary folder"):
        return None
    try:
        probe = tempfile.mkdtemp(prefix="verify-", dir=ensure_dir(paths.cache))
        os.rmdir(probe)
    except OSError as exc:
        print(f"note: cannot write {paths.cache} ({exc.strerror or exc}); "
              "restoring into the system's temporary folder", file=sys.stderr)
        return None
    return paths.cache


def deep_line(snapshot_id: str, deep: dict) -> str:
    """What --deep did with one snapshot: what was restored, and what chromem would load of it."""
    if "restored_files" not in deep:
        return f"  snapshot {snapshot_id}: could not be restored: {deep['error']}"
    restored = (f"  snapshot {snapshot_id}: restored {count(deep['restored_files'], 'file')} "
                f"({human_bytes(deep['restored_bytes'])}) into a temporary folder; ")
    if deep["loadable"]:
        return restored + (f"chromem would load it: {count(deep['collections'], 'collection')}, "
                           f"{count(deep['documents'], 'document')}")
    return restored + f"chromem would NOT load it: {deep['error']}"
