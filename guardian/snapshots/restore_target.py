"""Restore a snapshot into another folder (`guardian restore --target DIR`), leaving the store alone.

The target must not exist yet, or be an empty folder, and lie outside the store and outside
guardian's state dir: nothing of the user's is ever replaced. The snapshot is written into a
hidden sibling temp folder first (each blob checked against its hash, each file fsynced with its
snapshot mode and mtime), then renamed to the target: the target appears whole or not at all. A
damaged blob removes only that temp folder (guardian's own) and names the snapshot.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from guardian.errors import RestoreError, SnapshotError
from guardian.local.fsutil import TEMP_PREFIX, fsync_dir, write_all
from guardian.local.paths import StatePaths
from guardian.snapshots.manifest import Manifest
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore_plan import in_scope


@dataclass
class TargetResult:
    snapshot_id: str
    snapshot_time: datetime
    collection: str | None
    target: Path
    files: int
    bytes: int
    dry_run: bool
    loadable: bool | None = None
    load_error: str = ""

    def to_dict(self) -> dict:
        return {"snapshot": self.snapshot_id,
                "snapshot_time": self.snapshot_time.isoformat().replace("+00:00", "Z"),
                "collection": self.collection, "target": str(self.target), "files": self.files,
                "bytes": self.bytes, "dry_run": self.dry_run, "loadable": self.loadable,
                "load_error": self.load_error}


def check_target(target: Path, paths: StatePaths) -> Path:
    """The target as an absolute path; RestoreError when it could hold or hide user data."""
    target = Path(os.path.abspath(os.path.expanduser(str(target))))
    real = Path(os.path.realpath(target))
    for owner, what in ((paths.store, "the store"), (paths.root, "guardian's state dir")):
        owner = Path(os.path.realpath(owner))
        if real == owner or owner in real.parents or real in owner.parents:
            raise RestoreError(f"--target {target} overlaps {what} ({owner})",
                               "pick a new folder elsewhere, e.g. --target /tmp/restored-store")
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise RestoreError(f"--target {target} exists and is not a folder", "pick a new folder")
    if target.is_dir() and any(target.iterdir()):
        raise RestoreError(f"--target {target} is not empty; guardian never writes over files there",
                           "pick a new or empty folder")
    if not target.parent.is_dir():
        raise RestoreError(f"the parent of --target {target} does not exist", "create it first")
    return target


def wanted_files(manifest: Manifest, scope: str | None) -> list:
    return [e for e in manifest.files or [] if e.hash is not None and in_scope(e.path, scope)]


def restore_to_folder(paths: StatePaths, snapshot_id: str, manifest: Manifest, scope: str | None,
                      collection: str | None, target: Path, dry_run: bool = False) -> TargetResult:
    target = check_target(target, paths)
    files = wanted_files(manifest, scope)
    result = TargetResult(snapshot_id, manifest.time, collection, target, len(files),
                          sum(e.size for e in files), dry_run)
    if dry_run:
        return result
    staging = target.with_name(f"{TEMP_PREFIX}{target.name}.{secrets.token_hex(4)}")
    os.mkdir(staging, 0o700)
    try:
        _write_snapshot(Repository(paths.snapshots), manifest, scope, files, staging)
        if target.is_dir():
            target.rmdir()  # checked empty above; rmdir refuses if anything appeared since
        os.rename(staging, target)
        fsync_dir(target.parent)
    except SnapshotError as exc:
        raise RestoreError(f"snapshot {snapshot_id} cannot be restored: {exc.message}; {target} was not created",
                           "pick an earlier --at (see `guardian snapshots`) and run `guardian verify`") from None
    finally:
        if staging.exists():
            with contextlib.suppress(OSError):
                shutil.rmtree(staging)  # our own temp folder, never user data
    return result


def _write_snapshot(repo: Repository, manifest: Manifest, scope: str | None, files: list, staging: Path) -> None:
    dirs = sorted((rel, mode) for rel, mode in manifest.dirs if in_scope(rel, scope))
    for rel, mode in dirs:
        os.makedirs(staging / rel, exist_ok=True)
    for entry in files:
        path = staging / entry.path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            write_all(fd, repo.read_blob(entry.hash))
            os.fchmod(fd, entry.mode & 0o7777)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            os.fsync(fd)
        finally:
            os.close(fd)
    for rel, mode in reversed(dirs):
        os.chmod(staging / rel, (mode & 0o7777) or 0o700)
    for folder in {staging, *(staging / rel for rel, _ in dirs)}:
        fsync_dir(folder)
