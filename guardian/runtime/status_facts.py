"""Gather the facts behind `guardian status` (and the sidecar's /v1/status) from disk.

``guardian.runtime.status`` turns facts into the status dict without I/O; this module does the I/O:
read the sidecar's status file, scan the store (cached), list snapshots and quarantine.

When a sidecar runs, `guardian status` asks it instead (:func:`sidecar_status`): the sidecar keeps
its scan of the store current from the watcher's events, so its answer is as fresh as a walk of
the store, without one (a walk of a 100k store costs ~1 s, and stats every file again).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from guardian.errors import GuardianError
from guardian.local.quarantine import Quarantine
from guardian.runtime.control import control_request
from guardian.runtime.status import StatusFile, build_status
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore import id_time
from guardian.store.scan import scan_store


def list_snapshot_times(paths) -> list:
    """Every snapshot's time, from its id (no manifest is read: continuous capture keeps thousands)."""
    if not paths.snapshots.exists():
        return []
    return [id_time(snapshot_id) for snapshot_id in Repository(paths.snapshots).list_ids()]


def count_quarantined(paths) -> int | None:
    try:
        return sum(1 for entry in Quarantine(paths).list() if not getattr(entry, "restored", False))
    except (GuardianError, OSError):
        return None


def replica_facts(config, paths, now: float) -> tuple[list[dict], bool]:
    """Per configured replica what its state file says (last push, errors, bytes) and its lag; and
    whether an encrypted replica's key file exists but was never exported. Reads no remote object."""
    if not config.replicas:
        return [], False
    # only with replicas configured: ~45-100 ms of replicas + cryptography imports (measured after this module)
    from guardian.replicas import crypto
    from guardian.replicas.plan import replica_lag
    from guardian.replicas.replica import spec_from_config
    from guardian.replicas.state import load_state, state_file

    local = Repository(paths.snapshots).list_ids() if paths.snapshots.exists() else []
    facts, encrypted = [], False
    for url in config.replicas:
        try:
            spec = spec_from_config(url, config)
        except GuardianError as exc:
            facts.append({"replica": url, "error": exc.message, "configured": False})
            continue
        encrypted |= spec.encrypt
        state = load_state(state_file(paths.root, spec.display))
        newest = state.newest_remote
        lag = replica_lag(local, [newest] if newest else [], datetime.fromtimestamp(now, timezone.utc))
        facts.append({**state.to_dict(), "replica": spec.display, "configured": True, "encrypted": spec.encrypt,
                      "lag_seconds": lag, "pushed": bool(state.last_success)})
    key_file = crypto.KeySource.from_environment(config.replica_key_file).key_file
    unexported = encrypted and key_file.exists() and not crypto.exported_marker(key_file).exists()
    return facts, unexported


SIDECAR_TIMEOUT = 10.0  # a sidecar busy with a repair answers late; past this, status reads the disk


def sidecar_status(paths, timeout: float = SIDECAR_TIMEOUT) -> dict | None:
    """The running sidecar's own status over its control socket, or None when none answers (then
    the caller gathers the facts from disk)."""
    if not paths.control_socket.exists():
        return None
    try:
        answer = control_request(paths.control_socket, "status", timeout=timeout)
    except (GuardianError, OSError):
        return None
    return answer if isinstance(answer, dict) and "exit_code" in answer else None


def collect_status(config, paths, scan=None, status_file_data=None, now: float | None = None) -> dict:
    if scan is None:
        try:
            scan = scan_store(config.store_path, config.compress_flag, cache_dir=paths.cache)
        except GuardianError:
            scan = None
    if status_file_data is None:
        status_file_data = StatusFile(paths.status_file).read()
    try:
        snapshots = list_snapshot_times(paths)
    except (GuardianError, OSError):
        snapshots = []
    now = time.time() if now is None else now
    try:
        replicas, key_unexported = replica_facts(config, paths, now)
    except (GuardianError, OSError) as exc:
        replicas, key_unexported = [{"replica": "?", "error": str(exc), "configured": False}], False
    return build_status(paths, config, now, scan, snapshots, count_quarantined(paths), status_file_data,
                        replicas=replicas, key_unexported=key_unexported)
