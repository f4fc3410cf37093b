"""guardian verify: check every snapshot manifest and blob (and with --deep, that each snapshot loads)."""

from __future__ import annotations

from guardian.commands.output import print_json
from guardian.errors import ExitCode
from guardian.snapshots.progress import Progress
from guardian.snapshots.repository import Repository
from guardian.snapshots.verify import verify_repository

HELP = "verify the snapshot repository: manifests and blobs intact; --deep also checks each snapshot loads"


def add_arguments(parser) -> None:
    parser.add_argument("--deep", action="store_true",
                        help="also restore each snapshot into a temporary folder and check chromem would load it")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    from guardian.commands.restore_cmd import add_replica_arguments

    add_replica_arguments(parser, "verify this replica instead (every object against its hash)")


def run(args, ctx) -> int:
    progress = Progress("verify", enabled=False if args.json else None)
    if args.from_replica:
        from guardian.replicas.fetch import verify_replica
        from guardian.replicas.replica import Replica

        replica = Replica.open(args.from_replica, ctx.config, key_file=args.key_file)
        report = verify_replica(replica, deep=args.deep, scratch=ctx.paths.cache, progress=progress)
    else:
        report = verify_repository(Repository(ctx.paths.snapshots), deep=args.deep,
                                   scratch=ctx.paths.cache, progress=progress)
    if args.json:
        print_json(report.to_dict())
        return ExitCode.OK if report.ok else ExitCode.WARNINGS
    what = "objects" if args.from_replica else "blobs"
    print(f"{len(report.snapshots)} snapshots, {report.blobs_checked} {what} checked: "
          f"{'OK' if report.ok else 'PROBLEMS FOUND'}")
    for problem in report.problems:
        affects = ", ".join(problem["snapshots"]) or "the snapshots named by its blobs above"
        print(f"  {problem['kind']} damaged: {problem['detail']}; affects {affects}")
    for snapshot_id, deep in report.deep.items():
        if not deep["loadable"]:
            print(f"  snapshot {snapshot_id} would not load: {deep['error']}")
    if report.affected:
        intact = [s for s in report.snapshots if s not in report.affected]
        print(f"  unaffected snapshots: {', '.join(intact) or 'none'}")
    return ExitCode.OK if report.ok else ExitCode.WARNINGS
