"""Gather the facts behind `guardian status` (and the sidecar's /v1/status) from disk.

``guardian.runtime.status`` turns facts into the status dict without I/O; this module does the I/O:
read the sidecar's status file, scan the store (cached), list snapshots and quarantine.
"""

from __future__ import annotations

import time

from guardian.errors import GuardianError
from guardian.runtime.status import StatusFile, build_status
from guardian.store.scan import scan_store


def list_snapshot_times(paths) -> list:
    """Every snapshot's time, from its id (no manifest is read: continuous capture keeps thousands)."""
    from guardian.snapshots.repository import Repository
    from guardian.snapshots.restore import id_time

    if not paths.snapshots.exists():
        return []
    return [id_time(snapshot_id) for snapshot_id in Repository(paths.snapshots).list_ids()]


def count_quarantined(paths) -> int | None:
    from guardian.local.quarantine import Quarantine

    try:
        return sum(1 for entry in Quarantine(paths).list() if not getattr(entry, "restored", False))
    except (GuardianError, OSError):
        return None


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
    return build_status(paths, config, time.time() if now is None else now, scan, snapshots,
                        count_quarantined(paths), status_file_data)
