"""`guardian check`: will chromem load this store? With --repair, make it so.

Exit codes: 0 loadable and healthy; 1 loadable with warnings; 3 chromem would refuse the store;
2 usage error.
"""

from __future__ import annotations

import contextlib

from guardian.local.catalog import Catalog
from guardian.commands.output import format_table, no_store_yet_line, print_json, state_dir_writable
from guardian.store.scan import INFO, StoreScan, scan_store
from guardian.words import count

HELP = "predict whether chromem will load the store (exit 0 ok, 1 warnings, 3 refused); --repair fixes it"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.add_argument("--repair", action="store_true",
                        help="repair what chromem would refuse (snapshots, rebuilt metadata, quarantine)")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true", help="with --repair: only show the plan")
    parser.add_argument("--name", dest="names", action="append", default=[],
                        help="with --repair: a candidate collection name for lost metadata (repeatable)")
    parser.add_argument("--no-cache", dest="no_cache", action="store_true", help="re-verify every file")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list harmless (info) findings")


def run(args, ctx) -> int:
    if args.repair or args.dry_run:
        return run_check_repair(args, ctx)
    scan = run_scan(ctx, use_cache=not args.no_cache)
    if args.json:
        print_json(scan.to_dict())
    else:
        print(render_scan(scan, verbose=args.verbose))
    return scan.exit_code()


def run_scan(ctx, use_cache: bool = True) -> StoreScan:
    paths = ctx.paths
    writable = state_dir_writable(paths, "checking every file without the verified-file cache")
    scan = scan_store(ctx.config.store_path, ctx.config.compress_flag,
                      cache_dir=paths.cache if use_cache and writable else None)
    if writable:
        with contextlib.suppress(OSError):  # the catalog only helps a later repair; the verdict stands
            Catalog(paths.catalog_file).add([c.name for c in scan.collections if c.name], "scan")
    return scan


def verdict_line(scan: StoreScan) -> str:
    if not scan.loadable:
        return f"verdict: chromem WOULD REFUSE this store: {scan.error} (cause: {scan.cause})"
    if scan.healthy:
        return "verdict: chromem will load this store; no problems found"
    return "verdict: chromem will load this store, with warnings"


def render_scan(scan: StoreScan, verbose: bool = False) -> str:
    if any(p.kind == "store_missing" for p in scan.problems):
        return render_no_store_yet(scan)
    mode = "gzip (.gob.gz)" if scan.compress else "plain (.gob)"
    lines = [f"store: {scan.root}  [{mode}]", ""]
    rows = [(c.name if c.name is not None else "?", c.dir, c.status, c.documents)
            for c in scan.collections if not (c.skipped and all(p.severity == INFO for p in c.problems))]
    lines.append(format_table(("collection", "dir", "status", "documents"), rows) if rows else "no collections")
    shown = [p for p in scan.problems if verbose or p.severity != INFO]
    if shown:
        lines += ["", format_table(("severity", "kind", "path", "detail"),
                                   [(p.severity, p.kind, p.path, p.detail) for p in shown])]
        hints = dict.fromkeys(f"  {p.kind}: {p.hint}" for p in shown if p.hint)
        lines += ["", "what to do:", *hints]
    hidden = len(scan.problems) - len(shown)
    if hidden:
        lines.append(f"({count(hidden, 'harmless finding')} hidden; -v shows them)")
    lines += ["", verdict_line(scan)]
    return "\n".join(lines)


def render_no_store_yet(scan: StoreScan) -> str:
    """The one "no store yet" rule, in check's own words: a new machine, not a damaged store."""
    return (f"{no_store_yet_line(scan.root)}\n"
            "verdict: chromem would start an empty store here (contextd with no memories); "
            "pass --store if your store lives elsewhere")


def run_check_repair(args, ctx) -> int:
    """`guardian check --repair [--dry-run] [--name N]... [--json]`."""
    from guardian.repair.preflight import preflight

    result = preflight(ctx.config, ctx.paths, names=getattr(args, "names", None) or (),
                       dry_run=bool(getattr(args, "dry_run", False)),
                       use_cache=not getattr(args, "no_cache", False), deep=True)
    if getattr(args, "json", False):
        print_json(result.to_dict())
    else:
        print(render_report(result, verbose=bool(getattr(args, "verbose", False))))
    return result.exit_code


def render_report(result, verbose: bool = False) -> str:
    """The repair report of `check --repair` (a PreflightResult) for people."""
    from guardian.repair.preflight import summary_line

    lines = [f"store: {result.store}", ""]
    if result.actions:
        rows = [(a["action"] + ("" if a.get("ok", True) else " (FAILED)"), a["path"], a["source"])
                for a in result.actions]
        title = "planned actions (dry run, nothing changed):" if result.dry_run else "actions:"
        lines += [title, format_table(("action", "path", "source"), rows), ""]
        if verbose:
            lines += [f"  {a['path']}: {a['reason']}" for a in result.actions] + [""]
    else:
        lines += ["nothing to repair", ""]
    if result.cleaned:
        lines += [f"removed {count(len(result.cleaned), 'temp file')} an interrupted guardian write left in the store",
                  ""]
    where = ("would be moved to quarantine; no snapshot holds" if result.dry_run
             else "is in quarantine; no snapshot held")
    for lost in result.lost_documents:
        lines.append(f"LOST DOCUMENT: {lost['path']} (id {lost['id'] or 'unknown'}) {where} a valid copy")
    for item in result.unresolved:
        lines.append(f"UNRESOLVED {item['kind']}: {item['path']}: {item['detail']}"
                     + (f" -- {item['loud']}" if item.get("loud") else "") + f" (hint: {item.get('hint', '')})")
    for item in result.failed:
        lines.append(f"FAILED {item['action']} {item['path']}: {item.get('detail', '')}")
    for note in result.notes:
        lines.append(f"note: {note}")
    for item in result.hazards:
        loud = f"!! {item['loud']}: " if item.get("loud") else ""
        lines.append(f"warning {item['kind']}: {item['path']}: {loud}{item.get('detail', '')} "
                     f"(hint: {item.get('hint', '')})")
    lines += ["", summary_line(result)]
    if not result.dry_run and not result.loadable_after:
        lines.append(f"chromem would still refuse the store: {result.scan.error} (cause: {result.scan.cause})")
    return "\n".join(lines)
