"""guardian snapshots: list the snapshots of the store."""

from __future__ import annotations

import textwrap

from guardian.commands.output import format_table, human_bytes, print_json
from guardian.errors import ExitCode
from guardian.snapshots.repository import Repository

HELP = "list the snapshots of the store (newest last)"
WIDTH = 80


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    from guardian.commands.restore_cmd import add_replica_arguments

    add_replica_arguments(parser, "list the snapshots held by this replica")


def snapshot_rows(repo: Repository) -> list[dict]:
    from guardian.errors import SnapshotError

    rows = []
    for snapshot_id in repo.list_ids():
        try:
            header = repo.read_header(snapshot_id)
        except SnapshotError as exc:
            rows.append({"id": snapshot_id, "damaged": exc.message})
            continue
        stats = header.stats
        rows.append({
            "id": header.id, "time_utc": header.time.isoformat().replace("+00:00", "Z"),
            "time_local": header.time.astimezone().isoformat(timespec="seconds"),
            "collections": [c.name or f"({c.dir}: unnamed)" for c in header.collections],
            "documents": header.documents, "files": stats.get("files", 0),
            "total_bytes": stats.get("total_bytes", 0),
            "new_bytes": stats.get("new_bytes", 0) + _size(repo.manifest_path(snapshot_id)),
            "compress": header.compress, "unstable": stats.get("unstable", []),
        })
    return rows


def _size(path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def run(args, ctx) -> int:
    if args.from_replica:
        return run_from_replica(args, ctx)
    rows = snapshot_rows(Repository(ctx.paths.snapshots))
    if args.json:
        print_json(rows)
        return ExitCode.OK
    if not rows:
        print("no snapshots yet (take one with `guardian snapshot`)")
        return ExitCode.OK
    print(render_table(rows))
    return ExitCode.OK


def render_table(rows: list[dict], width: int = WIDTH) -> str:
    """Fits an 80-column terminal: the id (what `restore --at` takes, its UTC time inside), local
    time, counts and sizes; the newest snapshot's collections are listed below, wrapped."""
    table, damaged = [], []
    for row in rows:
        if "damaged" in row:
            table.append([row["id"], "DAMAGED", "", "", ""])
            damaged.append(f"  {row['id']}: {row['damaged']}")
            continue
        local = row["time_local"][:16].replace("T", " ")
        table.append([row["id"], local, row["documents"], human_bytes(row["total_bytes"]),
                      human_bytes(row["new_bytes"])])
    lines = [format_table(["id", "local time", "docs", "size", "new"], table)]
    lines += damaged
    newest = next((row for row in reversed(rows) if "damaged" not in row), None)
    if newest is not None:
        names = ", ".join(newest["collections"]) or "none"
        lines += textwrap.wrap(f"collections in {newest['id']}: {names}", width, subsequent_indent="  ",
                               break_on_hyphens=False)
    lines.append("restore one: guardian restore --at ID  (--json: every snapshot's collections)")
    return "\n".join(lines)



def run_from_replica(args, ctx) -> int:
    from guardian.replicas.fetch import list_remote
    from guardian.replicas.replica import Replica

    replica = Replica.open(args.from_replica, ctx.config, key_file=args.key_file)
    rows = list_remote(replica)
    if args.json:
        print_json(rows)
        return ExitCode.OK
    if not rows:
        print(f"replica {replica.display} holds no snapshot yet (push with `guardian replicate`)")
        return ExitCode.OK
    table = [[r["id"], "DAMAGED", "", r["damaged"], ""] if "damaged" in r else
             [r["id"], r["time_local"], r["time_utc"][:19] + "Z", ", ".join(r["collections"]), r["documents"]]
             for r in rows]
    print(format_table(["id", "local time", "utc", "collections", "documents"], table))
    return ExitCode.OK
