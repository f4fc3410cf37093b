"""`guardian find TEXT | --where k=v… | --id ID`: the memories of any snapshot that match, with the
snapshots they were in."""

from __future__ import annotations

from guardian.commands.memory_views import answer, detail, fit, local, memory_line, plural
from guardian.commands.output import human_bytes
from guardian.memories.points import snapshot_time

HELP = "the memories in any snapshot whose content or metadata match, with when they were seen"


def add_arguments(parser) -> None:
    parser.add_argument("text", metavar="TEXT", nargs="?",
                        help="words in the content or a metadata value (case is ignored)")
    parser.add_argument("--where", metavar="KEY=VALUE", action="append", default=[],
                        help="a metadata key with exactly this value (repeat: all must match)")
    parser.add_argument("--id", dest="memory_id", metavar="ID", help="the memory with this ID")
    parser.add_argument("--collection", metavar="NAME", help="only this collection")
    parser.add_argument("--json", action="store_true",
                        help="print {matches: [{collection, id, title, first_seen, last_seen, …}], …}")


def run(args, ctx) -> int:
    from guardian.memories.browser import MemoryBrowser

    found = MemoryBrowser.for_paths(ctx.paths).find(args.text, args.where, args.memory_id, args.collection)
    return answer(args.json, found.to_dict(), lambda: render(found), found.skipped, found.unreadable)


def render(found) -> list[str]:
    lines = [fit(f"{plural(len(found.matches), 'memory', 'memories')} found in "
                 f"{plural(found.snapshots, 'snapshot')} (read {plural(found.blobs_read, 'distinct blob')}, "
                 f"{human_bytes(found.bytes_read)})")]
    id_width = max((len(match.id) for match in found.matches), default=0)
    collection = None
    for match in found.matches:
        if match.collection != collection:
            collection = match.collection
            lines += ["", fit(collection)]
        lines.append(memory_line("", match.id, match.title, id_width))
        first, last = local(snapshot_time(match.first_seen)), local(snapshot_time(match.last_seen))
        seen = first if first == last else f"{first} → {last}"
        lines += detail(f"seen {seen}, {plural(match.snapshots, 'snapshot')}, {plural(match.versions, 'version')}"
                        f"{'' if match.in_latest else '; gone since'}")
    return lines
