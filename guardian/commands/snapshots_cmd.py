"""guardian snapshots: list the snapshots of the store."""

from __future__ import annotations

import shlex
import textwrap

from guardian.commands.output import format_table, human_bytes, print_json
from guardian.commands.restore_cmd import add_replica_arguments
from guardian.errors import ExitCode, SnapshotError
from guardian.snapshots.repository import Repository
from guardian.words import count

HELP = "list the snapshots of the store (newest last)"
WIDTH = 80


SHOWN_ONE_BY_ONE = 10  # the newest snapshots listed one per row; older ones of the same hour are grouped


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument("--all", action="store_true", help="one row per snapshot (default: group older ones by hour)")
    add_replica_arguments(parser, "list the snapshots held by this replica")


def snapshot_rows(repo: Repository) -> list[dict]:
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
            "damaged_files": [d[0] for d in stats.get("damaged", [])], "incremental": bool(stats.get("incremental")),
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
    print(render_table(rows if args.all else group_rows(rows)))
    return ExitCode.OK


def render_table(rows: list[dict], width: int = WIDTH, restore: str = "guardian restore --at ID") -> str:
    """Fits an 80-column terminal: the id (what `restore --at` takes, its UTC time inside), local
    time, counts and sizes (when the rows have them: a replica's listing does not); the newest
    snapshot's collections are listed below, wrapped."""
    sizes = any("total_bytes" in row for row in rows)
    table, notes = [], []
    for row in rows:
        if "damaged" in row:
            table.append([row["id"], "DAMAGED", "", "", ""][:5 if sizes else 3])
            notes.extend(_wrapped(f"  {row['id']}: {row['damaged']}", width))
            continue
        local = row["time_local"][:16].replace("T", " ")
        cells = [row["id"], local, row["documents"]]
        if sizes:
            cells += [human_bytes(row.get("total_bytes", 0)), human_bytes(row.get("new_bytes", 0))]
        table.append(cells)
        if row.get("damaged_files"):
            notes.append(f"  {row['id']}: {count(len(row['damaged_files']), 'damaged file')}, "
                         "previous good copies kept")
    lines = [format_table(["id", "local time", "docs", "size", "new"][:5 if sizes else 3], table)]
    lines += notes
    newest = next((row for row in reversed(rows) if "damaged" not in row and "group" not in row), None)
    if newest is not None:
        names = ", ".join(newest["collections"]) or "none"
        lines += _wrapped(f"collections in {newest['id']}: {names}", width)
    lines += unwrapped_command("restore one: ", restore, "(--all: one row each; --json: all facts)", width)
    return "\n".join(lines)


def unwrapped_command(label: str, command: str, note: str, width: int) -> list[str]:
    """A command to paste, never wrapped (a URL cut at its "&" would background the command in a
    shell): the note beside it when both fit in ``width``, else on the next line."""
    line = f"{label}{command}  {note}"
    return [line] if len(line) <= width else [f"{label}{command}", f"  {note}"]


def _wrapped(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False, break_long_words=True)


def group_rows(rows: list[dict], one_by_one: int = SHOWN_ONE_BY_ONE) -> list[dict]:
    """Rows (oldest first) with older snapshots of one UTC hour folded into one summary row (pure).
    Continuous capture keeps every snapshot of the last hour: thousands of rows would say nothing."""
    older, newest = rows[:-one_by_one] if one_by_one else rows, rows[-one_by_one:] if one_by_one else []
    grouped: list[dict] = []
    for row in older:
        hour = row.get("time_utc", "")[:13]
        last = grouped[-1] if grouped else None
        if last is not None and "damaged" not in row and "damaged" not in last and last.get("hour") == hour:
            last["group"].append(row)
            continue
        grouped.append({"hour": hour, "group": [row]} if "damaged" not in row else {"group": [row]})
    out = [g["group"][0] if len(g["group"]) == 1 else _summary(g["group"]) for g in grouped]
    return out + newest


def _summary(group: list[dict]) -> dict:
    last = group[-1]
    return {**last, "id": f"{count(len(group), 'snapshot')}, hour {last['id'][:11]}", "group": len(group),
            "new_bytes": sum(r.get("new_bytes", 0) for r in group),
            "damaged_files": [f for r in group for f in r.get("damaged_files", [])]}


def run_from_replica(args, ctx) -> int:
    from guardian.replicas.fetch import list_remote  # replicas: only for --from (~45-100 ms)
    from guardian.replicas.replica import Replica

    replica = Replica.open(args.from_replica, ctx.config, key_file=args.key_file)
    rows = list_remote(replica)
    if args.json:
        print_json(rows)
        return ExitCode.OK
    if not rows:
        print(f"replica {replica.display} holds no snapshot yet (push with `guardian replicate`)")
        return ExitCode.OK
    print(render_table(rows if args.all else group_rows(rows),
                       restore=f"guardian restore --from {shlex.quote(args.from_replica)} --at ID"))
    return ExitCode.OK
