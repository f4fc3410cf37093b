"""How `diff`, `history`, `show` and `find` print memories for a person: 80 columns, a memory by its
ID and what it is recognised by (its title, else its first line), then one indented line of detail
(what changed; contextd's outcome, state, tags, last update)."""

from __future__ import annotations

import sys
from datetime import datetime

from guardian.commands.output import print_json
from guardian.errors import ExitCode
from guardian.memories.points import STORE, snapshot_time
from guardian.memories.versions import when

WIDTH = 80
ID_WIDTH = 36    # a UUID, contextd's IDs: shown whole up to this length
DETAIL_INDENT = "      "


def fit(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def point_label(point: str, moment: datetime | None = None) -> str:
    """A snapshot as its id and local time; the store as "the store now"."""
    if point == STORE:
        return "the store now"
    return f"{point}  {local(moment or snapshot_time(point))}"


def memory_line(sign: str, memory_id: str, title: str, id_width: int) -> str:
    """``  + <id>  <title>`` (no sign: ``  <id>  <title>``), the IDs of one listing in one column."""
    shown = fit(memory_id, ID_WIDTH)
    return fit(f"  {sign + ' ' if sign else ''}{shown.ljust(min(id_width, ID_WIDTH))}  {title}".rstrip())


def facts_line(facts: dict[str, str]) -> str:
    """contextd's facts in a few words: ``success · active · tags a,b · updated 2026-01-02 11:17``."""
    parts = [facts[key] for key in ("outcome", "state") if key in facts]
    if "tags" in facts:
        parts.append(f"tags {facts['tags'].strip('[]')}")
    if "updated_at" in facts:
        parts.append(f"updated {when(facts['updated_at'])}")
    return " · ".join(parts)


SHOWN_KEYS = 3


def changed_line(fields: list[str], keys: list[str]) -> str:
    """``content, metadata (outcome, updated_at), embedding``; past three keys, how many more."""
    shown = ", ".join(keys[:SHOWN_KEYS]) + (f" +{len(keys) - SHOWN_KEYS}" if len(keys) > SHOWN_KEYS else "")
    return ", ".join(f"metadata ({shown})" if name == "metadata" and keys else name for name in fields)


def detail(text: str) -> list[str]:
    return [fit(DETAIL_INDENT + text)] if text else []


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else words or word + 's'}"


def answer(as_json: bool, data, render, skipped: list[dict] = (), unreadable: list[dict] = ()) -> int:
    """Print an answer: its JSON (``data``), or ``render()``'s lines; then a warning on stderr per
    damaged snapshot passed over and per file that could not be read. Always exit 0: what was
    asked for was answered."""
    if as_json:
        print_json(data)
    else:
        print("\n".join(render()))
    for item in skipped:
        print(f"warning: snapshot {item['snapshot']} was passed over: {item['reason']}", file=sys.stderr)
    for item in unreadable:
        where = f"in {point_label(item['point'])}" if item.get("point") else f"(blob {item['sha256'][:12]})"
        print(f"warning: {item['path']} {where} cannot be read ({item['reason']}); left out", file=sys.stderr)
    return ExitCode.OK
