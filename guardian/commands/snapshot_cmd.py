"""guardian snapshot: take one snapshot of the store now."""

from __future__ import annotations

from guardian.commands.output import human_bytes, print_json, require_store
from guardian.snapshots.progress import Progress
from guardian.snapshots.take import take_snapshot
from guardian.errors import ExitCode
from guardian.words import count

HELP = "take a snapshot of the store now (only changed files are read and stored)"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--prune", action="store_true",
                        help="afterwards apply retention (keep_last/keep_hourly/keep_daily/keep_weekly) "
                             "and remove unused blobs")


def run(args, ctx) -> int:
    require_store(ctx, "snapshot")
    progress = Progress("snapshot", enabled=False if args.json else None)
    result = take_snapshot(ctx.paths, ctx.config.compress_flag, progress=progress)
    data = result.to_dict()
    if args.prune:
        from guardian.snapshots.prune import forget_and_prune_for  # ~37 ms, only with --prune

        data["prune"] = forget_and_prune_for(ctx.paths, ctx.config).to_dict()
    if args.json:
        print_json(data)
        return ExitCode.WARNINGS if result.damaged else ExitCode.OK
    print(f"snapshot {result.id}: {count(result.files, 'file')} ({result.read_files} read), "
          f"{count(len(result.collections), 'collection')}, {count(result.documents, 'document')}, "
          f"{human_bytes(result.total_bytes)} in the store, {human_bytes(result.new_bytes)} newly stored, "
          f"{result.seconds:.2f} s")
    for path in result.unstable:
        print(f"  unstable (changed while read; previous version kept): {path}")
    for path, why in result.damaged:
        print(f"  DAMAGED (chromem would refuse it: {why}; the previous good copy stays the one restored): {path}")
    if result.damaged:
        print("  run `guardian check --repair` to repair the store from the good copies")
    for path, why in result.skipped:
        print(f"  skipped {path}: {why}")
    if args.prune:
        print(f"  retention: forgot {count(len(data['prune']['forgotten']), 'snapshot')}, "
              f"freed {human_bytes(data['prune']['bytes_freed'])}")
    return ExitCode.WARNINGS if result.damaged else ExitCode.OK
