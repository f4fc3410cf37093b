"""Shared output helpers for commands: JSON or a short aligned table, always to stdout."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence

from guardian.errors import NoStoreYet


def print_json(data: object, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def no_store_yet_line(store) -> str:
    """How `check` and `status` name a missing store: a new machine, not a damaged store."""
    return f"store: no store yet at {store} (contextd creates it on first start)"


def require_store(ctx, doing: str) -> None:
    """The one rule for "no store yet" (contextd creates it on first start): a one-line
    NoStoreYet (exit 1, a warning, as `check` and `status` give for store_missing)."""
    store = ctx.config.store_path
    if not os.path.lexists(store):
        raise NoStoreYet(f"no store yet at {store}: nothing to {doing}")


def state_dir_writable(paths, doing_without: str) -> bool:
    """Read-only commands still work when guardian's state dir cannot be written: one note on
    stderr saying which path and what is done without it."""
    problem = paths.ensure_if_possible()
    if problem is None:
        return True
    print(f"note: {problem.message}; {doing_without}", file=sys.stderr)
    return False


def human_bytes(n: int | float) -> str:
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
