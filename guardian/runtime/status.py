"""The status model behind `guardian status`: one dict built from facts, and one exit code.

(Rendering it for people is presentation: ``guardian.commands.status_cmd``.)

The sidecar writes its own state to ``StatePaths.status_file`` every few seconds
(:data:`HEARTBEAT_SECONDS`), atomically, through :class:`StatusFile`. `guardian status` reads that
file, scans the store, lists snapshots and quarantine, and hands all of it to :func:`build_status`,
which does no I/O (``pid_alive`` is the only probe, and it is passed in).

The sidecar counts as running when the status file exists, says so, names a live pid and was
updated within ``STALE_FACTOR`` x the heartbeat; an older file reads "not running (stale status file)".

Exit codes of `guardian status` (for scripts and monitoring checks), highest precedence first:

    3  the store would not load (chromem's NewPersistentDB would refuse it)
    4  the sidecar runs but its child (contextd) is FATAL: it stopped restarting it
    1  warnings: snapshots stale (newest older than 2 x the interval) or none yet, store loadable
       with warnings, sidecar not running (or its status file is stale)
    0  healthy
    2  usage error (bad flags or configuration; raised before any status is built)
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from guardian.errors import ExitCode
from guardian.local.fsutil import atomic_write, ensure_dir
from guardian.words import count

HEARTBEAT_SECONDS = 5.0
STALE_FACTOR = 3
SNAPSHOT_STALE_FACTOR = 2
REPLICA_LAG_WARNING = 600.0  # seconds a replica may lag behind the newest local snapshot

MAX_STATUS_FILE = 1 << 20


# --------------------------------------------------------------------------- the status file


class StatusFile:
    """The sidecar's status file: written atomically, read tolerantly (missing or garbled -> None)."""

    def __init__(self, paths_or_file) -> None:
        self.path = Path(getattr(paths_or_file, "status_file", paths_or_file))

    def write(self, data: dict) -> None:
        ensure_dir(self.path.parent)
        atomic_write(self.path, (json.dumps(data, sort_keys=True, default=str) + "\n").encode("utf-8"))

    def read(self) -> dict | None:
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(MAX_STATUS_FILE + 1)
        except OSError:
            return None
        if len(raw) > MAX_STATUS_FILE:
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- time helpers


def to_epoch(value: Any) -> float | None:
    """Epoch seconds from epoch seconds, a datetime or an ISO-8601 string; None when unknown."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    if isinstance(value, str):
        try:
            return to_epoch(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def iso_utc(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def human_duration(seconds: float | None) -> str:
    """Short and rough: 45s, 12 min, 3h, 2d."""
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def default_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except (OverflowError, ValueError, OSError):
        return False
    return True


# --------------------------------------------------------------------------- parts


def sidecar_part(data: dict | None, now: float, pid_alive: Callable[[int], bool]) -> dict:
    """Is the sidecar running, per its status file? Plus what that file says about it."""
    sidecar = (data or {}).get("sidecar") if isinstance(data, dict) else None
    if not isinstance(sidecar, dict):
        return {"running": False, "state": "stopped", "detail": "not running"}
    pid = sidecar.get("pid")
    started = to_epoch(sidecar.get("started_at"))
    updated = to_epoch(sidecar.get("updated_at"))
    heartbeat = _positive(sidecar.get("heartbeat_seconds"), HEARTBEAT_SECONDS)
    part = {
        "pid": pid, "started_at": iso_utc(started), "updated_at": iso_utc(updated),
        "http": sidecar.get("http"), "child": child_part(sidecar.get("child")),
        "heartbeat_seconds": heartbeat,
        "capture": sidecar.get("capture") if isinstance(sidecar.get("capture"), dict) else None,
        "live_damage": sidecar["health"].get("damaged") if isinstance(sidecar.get("health"), dict) else None,
    }
    state, detail = _sidecar_state(sidecar, pid, updated, now, heartbeat, pid_alive)
    part.update(running=state == "running", state=state, detail=detail)
    part["uptime_seconds"] = now - started if state == "running" and started is not None else None
    return part


def _sidecar_state(sidecar: dict, pid, updated, now, heartbeat, pid_alive) -> tuple[str, str]:
    if sidecar.get("running") is False:
        return "stopped", "not running (stopped cleanly)"
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not pid_alive(pid):
        return "stopped", f"not running (pid {pid} is gone)"
    if updated is None or now - updated > STALE_FACTOR * heartbeat:
        return "stale", "not running (stale status file)"
    return "running", "running"


def _positive(value, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else default


def child_part(child: Any) -> dict | None:
    """The supervised child (contextd), tolerant of both the status-file and supervisor shapes."""
    if not isinstance(child, dict):
        return None
    state = str(child.get("state") or "unknown")
    return {
        "state": state,
        "pid": child.get("pid"),
        "restarts": child.get("restarts", 0),
        "last_exit": child.get("last_exit", child.get("last_exit_code")),
        "fatal": bool(child.get("fatal")) or state.lower() == "fatal",
        "fatal_reason": child.get("fatal_reason"),
        "cmd": child.get("cmd") or child.get("command"),
    }


def store_part(scan: Any, quarantine_count: int | None) -> dict:
    """The store's health from a StoreScan (or None when it could not be scanned)."""
    if scan is None:
        return {"scanned": False, "loadable": None, "error": "", "quarantined": quarantine_count}
    collections = [c for c in scan.collections if _status(c) != "skipped"]
    counts = {status: sum(1 for c in collections if _status(c) == status)
              for status in ("healthy", "warning", "damaged")}
    problems = list(scan.problems)
    return {
        "scanned": True,
        "exists": not any(getattr(p, "kind", "") == "store_missing" for p in problems),
        "path": str(scan.root),
        "compress": scan.compress,
        "loadable": bool(scan.loadable),
        "error": scan.error or "",
        "collections": {"total": len(collections), **counts},
        "documents": sum(scan.loaded_collections().values()) if hasattr(scan, "loaded_collections") else None,
        "problems": len(problems),
        "fatal_problems": sum(1 for p in problems if getattr(p, "severity", "") == "fatal"),
        "warning_problems": sum(1 for p in problems if getattr(p, "severity", "") == "warning"),
        "quarantined": quarantine_count,
    }


def _status(collection) -> str:
    return getattr(collection, "status", "healthy")


def snapshot_time(item: Any) -> float | None:
    """A snapshot's creation time from a Manifest (.time), a dict, or a bare time value."""
    if item is None or isinstance(item, (int, float, str, datetime)):
        return to_epoch(item)
    for attr in ("time", "created_at"):
        if hasattr(item, attr):
            return to_epoch(getattr(item, attr))
        if isinstance(item, dict) and attr in item:
            return to_epoch(item[attr])
    return to_epoch(item)


def snapshots_part(snapshots: Iterable[Any], now: float, interval_seconds: float) -> dict:
    times = sorted(t for t in (snapshot_time(s) for s in snapshots) if t is not None)
    newest = times[-1] if times else None
    age = now - newest if newest is not None else None
    return {
        "count": len(times),
        "newest": iso_utc(newest),
        "oldest": iso_utc(times[0]) if times else None,
        "newest_age_seconds": age,
        "interval_seconds": interval_seconds,
        "stale": age is None or age > SNAPSHOT_STALE_FACTOR * interval_seconds,
    }


def uncaptured_part(sidecar: dict, now: float) -> dict:
    """Changes the running sidecar saw but has not snapshotted yet (continuous capture)."""
    capture = sidecar.get("capture") if sidecar.get("running") else None
    if not isinstance(capture, dict):
        return {"uncaptured_changes": None, "uncaptured_oldest_seconds": None}
    updated = to_epoch(sidecar.get("updated_at"))
    oldest = capture.get("oldest_pending_seconds")
    if oldest is not None and updated is not None:
        oldest = oldest + max(0.0, now - updated)  # the status file is a few seconds old
    return {"uncaptured_changes": capture.get("pending_changes"), "uncaptured_oldest_seconds": oldest}


# --------------------------------------------------------------------------- the whole


def build_status(paths, config, now: Any, scan: Any, snapshots: Iterable[Any], quarantine_count: int | None,
                 status_file_data: dict | None,
                 pid_alive: Callable[[int], bool] = default_pid_alive, *,
                 replicas: list[dict] | None = None, key_unexported: bool = False) -> dict:
    """The full status dict (pure: every fact is passed in). ``now``: epoch seconds or a datetime."""
    now_epoch = to_epoch(now)
    interval = float(config.snapshot_interval_minutes) * 60.0
    last_repair = (status_file_data or {}).get("last_repair") if isinstance(status_file_data, dict) else None
    status = {
        "generated_at": iso_utc(now_epoch),
        "store_path": str(paths.store),
        "state_dir": str(paths.root),
        "sidecar": sidecar_part(status_file_data, now_epoch, pid_alive),
        "store": store_part(scan, quarantine_count),
        "snapshots": snapshots_part(snapshots, now_epoch, interval),
        "last_repair": last_repair if isinstance(last_repair, dict) else None,
        "replicas": replicas or [],
        "replica_key_unexported": key_unexported,
    }
    status["snapshots"].update(uncaptured_part(status["sidecar"], now_epoch))
    running = status["sidecar"].get("running")
    status["store"]["unrepaired"] = (status["sidecar"].get("live_damage") or []) if running else []
    # the sidecar saw the store folder itself go (not a new machine's "no store yet")
    status["store"]["gone"] = bool(running and (status["sidecar"].get("capture") or {}).get("store_gone")
                                   and status["store"].get("exists") is False)
    status["warnings"] = status_warnings(status)
    status["exit_code"] = exit_code(status)
    status["health"] = {ExitCode.OK: "ok", ExitCode.WARNINGS: "warning", ExitCode.UNLOADABLE: "unloadable",
                        ExitCode.CHILD_FATAL: "child-fatal"}[status["exit_code"]]
    return status


def child_is_fatal(status: dict) -> bool:
    sidecar = status["sidecar"]
    child = sidecar.get("child") or {}
    return bool(sidecar.get("running") and child.get("fatal"))


def status_warnings(status: dict) -> list[str]:
    """Everything that makes the status less than healthy, one short phrase each."""
    out = []
    store, snaps, sidecar = status["store"], status["snapshots"], status["sidecar"]
    if store.get("loadable") is False:
        out.append(f"store would not load: {store.get('error') or 'see guardian check'}")
    elif not store.get("scanned"):
        out.append("store could not be scanned")
    elif store.get("gone"):
        out.append("the store folder went away while guarded (`guardian restore --at latest` brings it back)")
    elif store.get("exists") is False:   # the one "no store yet" rule: normal on a new machine, a warning
        out.append("no store yet (contextd creates it on first start)")
    elif store_issue_count(store):
        out.append(f"store loads with {count(store_issue_count(store), 'problem')}")
    if child_is_fatal(status):
        out.append("child is FATAL (restarts stopped; run `guardian restart`)")
    if not sidecar.get("running"):
        out.append(f"sidecar {sidecar.get('detail', 'not running')}")
    if store.get("unrepaired"):
        out.append(f"{count(len(store['unrepaired']), 'damaged path')} the live repair could not fix "
                   "(see `guardian check`)")
    if snaps["count"] == 0:
        out.append("no snapshot yet")
    elif snaps["stale"]:
        out.append(f"newest snapshot is {human_duration(snaps['newest_age_seconds'])} old "
                   f"(more than {SNAPSHOT_STALE_FACTOR}x the interval)")
    out += replica_warnings(status.get("replicas") or [])
    if status.get("replica_key_unexported"):
        out.append("the replica key was never exported (run `guardian key export` and keep it off this machine)")
    return out


def replica_warnings(replicas: list[dict]) -> list[str]:
    out = []
    for replica in replicas:
        name = replica.get("replica")
        if not replica.get("configured"):
            out.append(f"replica {name} is misconfigured: {replica.get('error')}")
        elif replica.get("consecutive_errors"):
            out.append(f"replica {name} failing ({replica['consecutive_errors']} in a row): "
                       f"{replica.get('last_error')}")
        elif not replica.get("pushed"):
            out.append(f"replica {name} was never pushed (guardian replicate)")
        elif (replica.get("lag_seconds") or 0) > REPLICA_LAG_WARNING:
            out.append(f"replica {name} is {human_duration(replica['lag_seconds'])} behind")
        if replica.get("unmended"):
            out.append(f"replica {name} holds {len(replica['unmended'])} damaged object(s) this machine cannot push "
                       f"again ({replica['unmended'][0]}); its snapshots restore without what those held")
    return out


def store_issue_count(store: dict) -> int:
    """Warnings and fatal problems (informational notes do not count), or damaged collections."""
    counts = store["collections"]
    return max(store["warning_problems"] + store["fatal_problems"], counts["warning"] + counts["damaged"])


def exit_code(status: dict) -> int:
    """3 store would not load > 4 child FATAL > 1 warnings > 0 healthy (2 is usage, raised earlier)."""
    if status["store"].get("loadable") is False:
        return ExitCode.UNLOADABLE
    if child_is_fatal(status):
        return ExitCode.CHILD_FATAL
    return ExitCode.WARNINGS if status_warnings(status) else ExitCode.OK
