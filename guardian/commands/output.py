"""Shared output helpers for commands: JSON or a short aligned table, always to stdout."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterable, Sequence

from guardian.errors import PATH_ERRNOS, NoStoreYet, OutputError, Refused, UsageError
from guardian.local.fsutil import atomic_write, write_all


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


def write_user_file(path: str, body: bytes, *, option: str = "--output", mode: int = 0o600,
                    overwrite: bool = True, into_devices: bool = True) -> None:
    """Write a file the user named (``export -o``, ``key export -o``), with one answer per failure.

    A new or regular file is written atomically (a temp file beside it, renamed, or with
    ``overwrite=False`` linked into place, which never replaces a file that exists or appears);
    ``into_devices``: anything else that exists (/dev/null, a FIFO, a terminal) is written into as
    it is, never replaced: a rename over /dev/null, run as root, would leave the machine without one.
    A path that cannot be used (no such folder, no permission, read-only) is the request to change
    (exit 2); a write that fails on the way (a full disk) is a failure (exit 5), and no partial
    file is left behind."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UsageError(f"cannot use {option} {path}: {exc.strerror or exc}", "pick a file you can write") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{option} {path} is a folder", f"name a file in it, e.g. {option} {path}/out")
    regular = info is None or stat.S_ISREG(info.st_mode)
    if not regular and not into_devices:
        raise UsageError(f"{option} {path} is not a regular file", "name a new file")
    try:
        if regular:
            atomic_write(os.path.abspath(path), body, mode=mode, overwrite=overwrite)
            return
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)   # no O_CREAT, no O_TRUNC: a device or a pipe as it is
        try:
            write_all(fd, body)
        finally:
            os.close(fd)
    except FileExistsError:
        raise Refused(f"{path} already exists; not overwriting it",
                      "pass --force to replace it, or name another file") from None
    except OSError as exc:
        if exc.errno in PATH_ERRNOS:
            raise UsageError(f"cannot write {option} {path}: {exc.strerror or exc}",
                             "create its folder first, or name a file you can write") from None
        raise OutputError(f"cannot write {option} {path}: {exc.strerror or exc}"
                          + ("; no partial file was left" if regular else "")) from None
