"""`guardian show ID [--at TIME|ID]`: one memory in full at a point in time."""

from __future__ import annotations

from guardian.commands.memory_views import answer, facts_line, point_label

HELP = "one memory in full (content, metadata, embedding summary) at a point in time (default: now)"


def add_arguments(parser) -> None:
    parser.add_argument("memory_id", metavar="ID", help="the memory's ID")
    parser.add_argument("--at", metavar="TIME",
                        help="a snapshot id, latest, an ISO 8601 time or an age such as 2h (default: the store now)")
    parser.add_argument("--collection", metavar="NAME",
                        help="the memory's collection (needed when the ID is in several)")
    parser.add_argument("--json", action="store_true", help="print everything, the embedding's values too")


def run(args, ctx) -> int:
    from guardian.memories.browser import MemoryBrowser

    data = MemoryBrowser.for_paths(ctx.paths).show(args.memory_id, args.at, args.collection).to_dict()
    return answer(args.json, data, lambda: render(data))


def render(data: dict) -> list[str]:
    embedding = data["embedding"]
    norm = "n/a" if embedding["norm"] is None else f"{embedding['norm']:.4f}"
    lines = [f"memory      {data['id']}",
             f"collection  {data['collection']}",
             f"from        {point_label(data['snapshot'])}",
             f"file        {data['path']}  sha256 {data['sha256'][:16]}",
             f"title       {data['title']}"]
    facts = facts_line({k: v for k, v in data["metadata"].items() if k in ("outcome", "state", "tags", "updated_at")})
    if facts:
        lines.append(f"facts       {facts}")
    lines.append(f"embedding   {embedding['dimension']} dimensions, norm {norm}")
    lines.append("metadata" + ("" if data["metadata"] else "    (none)"))
    width = max((len(key) for key in data["metadata"]), default=0)
    lines += [f"  {key.ljust(width)}  {value}" for key, value in data["metadata"].items()]
    lines.append("content" + ("" if data["content"] else "     (empty)"))
    lines += [f"  {line}" for line in data["content"].splitlines()]
    return lines
