"""The supervised child's record, so a crashed guardian's child is never left running next to a new one.

The sidecar writes ``{pid, start_ticks, cmd}`` for each child it starts, next to the store's sidecar
lock (keyed on the store, not the state dir). The next ``guardian run``, holding that lock, stops a
recorded child that is still alive before it starts its own. The start time (``/proc/PID/stat``
field 22) makes sure a pid reused by an unrelated process is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from guardian.local.fsutil import atomic_write_text


@dataclass(frozen=True)
class ChildRecord:
    pid: int
    start_ticks: int | None
    cmd: list[str]


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), None when unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def write_record(path: Path, pid: int, cmd: list[str]) -> None:
    atomic_write_text(path, json.dumps({"pid": pid, "start_ticks": process_start_ticks(pid), "cmd": cmd}) + "\n")


def read_record(path: Path) -> ChildRecord | None:
    try:
        data = json.loads(path.read_text())
        return ChildRecord(int(data["pid"]), data.get("start_ticks"), list(data.get("cmd", [])))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_alive(record: ChildRecord) -> bool:
    """Still the same process (same pid and start time) and not a zombie."""
    if record.start_ticks is not None and os.path.exists("/proc/self/stat"):
        return process_start_ticks(record.pid) == record.start_ticks
    try:
        os.kill(record.pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process now: never ours to stop


def stop_recorded_child(path: Path, timeout: float = 10.0, log=None) -> ChildRecord | None:
    """Stop a predecessor's child still alive (SIGTERM to its group, SIGKILL after ``timeout``).
    Returns the record of the child that was stopped, None when there was none alive."""
    record = read_record(path)
    if record is None or not is_alive(record):
        return None
    if log is not None:
        log.warning("predecessor_child_stopped", pid=record.pid, cmd=record.cmd,
                    note="a crashed guardian's child was still running")
    _signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_alive(record) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_alive(record):
        _signal_group(record.pid, signal.SIGKILL)
    return record


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)  # the child leads its own group (pgid == pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)
