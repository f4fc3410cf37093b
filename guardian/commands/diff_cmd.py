"""`guardian diff FROM [TO]`: the memories added, removed and changed between two points in time."""

from __future__ import annotations

from guardian.commands.memory_views import answer, changed_line, detail, facts_line, fit, memory_line, point_label

HELP = "what changed between two points in time, memory by memory (TO left out: the store now)"
SIGNS = {"added": "+", "removed": "-", "changed": "~"}


def add_arguments(parser) -> None:
    parser.add_argument("from_point", metavar="FROM",
                        help="a snapshot id, latest, an ISO 8601 time or an age such as 2h (as restore --at)")
    parser.add_argument("to_point", metavar="TO", nargs="?",
                        help="the same kinds of point (default: the store as it is now)")
    parser.add_argument("--collection", metavar="NAME", help="only this collection")
    parser.add_argument("--json", action="store_true",
                        help='print {"from", "to", "changes": [{"collection", "id", "change", "fields", "title", …}]}')


def run(args, ctx) -> int:
    from guardian.memories.browser import MemoryBrowser

    diff = MemoryBrowser.for_paths(ctx.paths).diff(args.from_point, args.to_point, args.collection)
    return answer(args.json, diff.to_dict(), lambda: render(diff), unreadable=diff.unreadable)


def render(diff) -> list[str]:
    counts = diff.counts()
    lines = [f"from {point_label(diff.from_point, diff.from_time)}", f"to   {point_label(diff.to_point, diff.to_time)}",
             f"{counts['added']} added, {counts['removed']} removed, {counts['changed']} changed"]
    if not diff.changes:
        return lines[:2] + ["no memory changed"]
    id_width = max(len(change.version.id) for change in diff.changes)
    collection = None
    for change in diff.changes:
        data = change.to_dict()
        if data["collection"] != collection:
            collection = data["collection"]
            mine = [c for c in diff.changes if c.version.collection == collection]
            counted = {kind: sum(c.change == kind for c in mine) for kind in SIGNS}
            kinds = ", ".join(f"{n} {kind}" for kind, n in counted.items() if n)
            lines += ["", fit(f"{collection}: {kinds}")]
        lines.append(memory_line(SIGNS[change.change], data["id"], data["title"], id_width))
        lines += detail(changed_line(data["fields"], data["metadata_keys"]) if change.change == "changed"
                        else facts_line(data["facts"]))
    return lines
