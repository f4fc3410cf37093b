"""guardian replicate: push the snapshots to every configured replica now (what each one lacks)."""

from __future__ import annotations

from guardian.commands.output import human_bytes, print_json
from guardian.errors import ExitCode, ReplicaError, UsageError
from guardian.snapshots.progress import Progress
from guardian.words import count

HELP = "push snapshots to the replicas now (only what each replica lacks; records last)"


def add_arguments(parser) -> None:
    parser.add_argument("--to", action="append", metavar="URL",
                        help="replica URL (s3://bucket/prefix?endpoint=…, file:///folder); default: config `replicas`")
    parser.add_argument("--gc", action="store_true",
                        help="also remove objects no kept snapshot needs (left by interrupted pushes)")
    parser.add_argument("--key-file", dest="key_file", metavar="FILE",
                        help="the replica key (default: replica_key_file, ~/.config/guardian/replica.key)")
    parser.add_argument("--take-over", dest="take_over", action="store_true",
                        help="make this store the replica's owner (it replaces the store that pushed there before)")
    parser.add_argument("--check", action="store_true",
                        help="read back every object the replica's snapshots rely on now (downloads the whole "
                             "replica once) and push again what is damaged; by default only objects whose listing "
                             "changed, and those not read back for replica_check_days")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args, ctx) -> int:
    from guardian.replicas.sync import replicate  # ~120 ms: not for `guardian --help`

    urls = args.to or list(ctx.config.replicas)
    if not urls:
        raise UsageError("no replica is configured",
                         "add replicas = [\"s3://bucket/prefix\"] to config.toml or pass --to URL")
    ctx.paths.ensure()
    results, failures = [], []
    for url in urls:
        progress = Progress("replicate", enabled=False if args.json else None)
        try:
            results.append(replicate(ctx.config, ctx.paths, url, key_file=args.key_file, progress=progress,
                                     collect_garbage=args.gc, take_over=args.take_over,
                                     check_everything=args.check))
        except ReplicaError as exc:
            if len(urls) == 1:
                raise
            failures.append({"replica": url, "error": exc.one_line()})
    if args.json:
        print_json({"ok": not failures, "replicas": [r.to_dict() for r in results], "failures": failures})
    else:
        for result in results:
            print(f"{result.replica}: {count(len(result.uploaded), 'snapshot')} sent "
                  f"({count(result.objects_sent, 'object')}, {human_bytes(result.bytes_sent)}; "
                  f"{count(result.objects_present, 'object')} already there), "
                  f"{len(result.forgotten)} forgotten, {count(result.objects_deleted, 'object')} removed; "
                  f"it holds {count(result.remote_snapshots, 'snapshot')}, lag {result.lag_seconds:.0f} s, "
                  f"{result.seconds:.2f} s")
            if result.gc_skipped:
                print(f"  no object removed: {result.gc_skipped}")
            print_check(result.mend)
        for failure in failures:
            print(f"{failure['replica']}: {failure['error']}")
    if failures:
        return ExitCode.REPLICA
    return ExitCode.WARNINGS if any(r.mend.unmendable for r in results) else ExitCode.OK


def print_check(mend) -> None:
    """What the push read back, found damaged, and pushed again."""
    if mend.checked:
        print(f"  read back {mend.checked} objects ({human_bytes(mend.checked_bytes)}) to check them")
    for key, problem in sorted(mend.damaged.items()):
        print(f"  damaged: {key}: {problem}; {mend.outcome(key)}")
    for key, why in sorted(mend.unmendable.items()):
        print(f"  warning: {key} cannot be mended from this machine: {why}")
