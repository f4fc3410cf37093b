"""Restore a snapshot into another folder (`guardian restore --target DIR`), leaving the store alone.

The target must not exist yet, or be an empty folder, and lie outside the store and outside
guardian's state dir: nothing of the user's is ever replaced. The snapshot is written into a
hidden sibling temp folder first (through folder fds opened without following symlinks, as restores
into the store are: ``storefs``; each blob checked against its hash, each file with its snapshot
mode and mtime, all made durable by one filesystem sync), then renamed to the target: the target
appears whole or not at all. A damaged blob removes only that temp folder (guardian's own) and
names the snapshot. What is written is the plan of a restore into an empty store: the good copies
found for what the snapshot lacks included, copies chromem would refuse and collections with no
good metadata anywhere left out unless ``allow_damaged`` (see ``restore_plan``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from guardian.errors import PATH_ERRNOS, Refused, RestoreError, SnapshotError
from guardian.local import fsutil, storefs
from guardian.local.paths import StatePaths
from guardian.snapshots.manifest import Manifest
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore_inputs import store_rebuilt
from guardian.snapshots.restore_plan import PlanInputs, RestorePlan, plan_restore
from guardian.snapshots.capture import test_slow_io_delay
from guardian.snapshots.unpack import RunResult, SharedStaging, StageJob


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
    plan: RestorePlan | None = None
    refused_damaged: list[dict] = field(default_factory=list)  # snapshot copies chromem would refuse: not written

    def to_dict(self) -> dict:
        found = self.plan.to_dict() if self.plan is not None else {}
        return {"snapshot": self.snapshot_id,
                "snapshot_time": self.snapshot_time.isoformat().replace("+00:00", "Z"),
                "collection": self.collection, "target": str(self.target), "files": self.files,
                "bytes": self.bytes, "dry_run": self.dry_run, "loadable": self.loadable,
                "load_error": self.load_error, "refused_damaged": self.refused_damaged,
                "substituted": found.get("substituted", []),
                "left_out": found.get("left_out", [])}


def check_target(target: Path, paths: StatePaths) -> Path:
    """The target as an absolute path; Refused when it could hold or hide user data."""
    target = Path(os.path.abspath(os.path.expanduser(str(target))))
    real = Path(os.path.realpath(target))
    for owner, what in ((paths.store, "the store"), (paths.root, "guardian's state dir")):
        owner = Path(os.path.realpath(owner))
        if real == owner or owner in real.parents or real in owner.parents:
            raise Refused(f"--target {target} overlaps {what} ({owner})",
                               "pick a new folder elsewhere, e.g. --target /tmp/restored-store")
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise Refused(f"--target {target} exists and is not a folder", "pick a new folder")
    if target.is_dir() and any(target.iterdir()):
        raise Refused(f"--target {target} is not empty; guardian never writes over files there",
                           "pick a new or empty folder")
    if not target.parent.is_dir():
        raise Refused(f"the parent of --target {target} does not exist", "create it first")
    return target


def restore_to_folder(paths: StatePaths, snapshot_id: str, manifest: Manifest, scope: str | None,
                      collection: str | None, target: Path, dry_run: bool = False,
                      inputs: PlanInputs | None = None) -> TargetResult:
    """Write the snapshot (in ``scope``) into ``target`` as the plan of a restore into an empty store
    has it (``inputs``: the good copies for what the snapshot lacks, see ``restore_inputs``)."""
    target = check_target(target, paths)
    inputs = inputs or PlanInputs(manifest.compress)
    plan = plan_restore(snapshot_id, manifest.files or [], manifest.dirs, {}, scope, inputs)
    files = [action.entry for action in plan.of_kind("write")]
    result = TargetResult(snapshot_id, manifest.time, collection, target, len(files),
                          sum(e.size for e in files), dry_run, plan=plan)
    if dry_run:
        return result
    repo = Repository(paths.snapshots)
    store_rebuilt(repo, plan.rebuilt_blobs(inputs))
    parent_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)   # the user's path
    staging = f"{storefs.STAGE_PREFIX}{target.name}.{secrets.token_hex(4)}"
    try:
        try:
            os.mkdir(staging, 0o700, dir_fd=parent_fd)
            with storefs.DirFds.from_fd(os.open(staging, storefs.DIR_FLAGS, dir_fd=parent_fd),
                                        target.parent / staging) as dirs:
                refused = _write_snapshot(repo, plan.create_dirs, files, dirs, not inputs.allow_damaged)
                result.refused_damaged = [{"path": path, "reason": why} for path, why in sorted(refused)]
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(target.name, dir_fd=parent_fd)  # checked empty above; rmdir refuses if anything appeared
            os.rename(staging, target.name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            os.fsync(parent_fd)
        except SnapshotError as exc:
            raise RestoreError(f"snapshot {snapshot_id} cannot be restored: {exc.message}; {target} was not created",
                               "pick an earlier --at (see `guardian snapshots`) and run `guardian verify`") from None
        except storefs.UnsafeFolder as exc:
            raise RestoreError(f"a folder of the restore into {target} was replaced while it ran ({exc}); "
                               f"{target} was not created", "run the restore again") from None
        except OSError as exc:   # read-only, full, not ours: nothing was created there
            error = Refused if exc.errno in PATH_ERRNOS else RestoreError
            raise error(f"cannot write into {target.parent}: {exc.strerror or exc}; {target} was not created",
                        "pick a --target on a disk you can write, with room for the store") from None
        finally:
            with contextlib.suppress(OSError):
                storefs.remove_stage_dir(parent_fd, staging)  # our own temp folder, never user data
    finally:
        os.close(parent_fd)
    return result


def _write_snapshot(repo: Repository, folders: list[tuple[str, int]], files: list, dirs: storefs.DirFds,
                    judge: bool) -> list[tuple[str, str]]:
    """Every folder and file of the snapshot into the staging folder ``dirs`` is rooted at, each
    write relative to a folder fd opened without following symlinks (a folder swapped for a
    symlink meanwhile is never written through). Modes keep permission bits only. The files are
    staged as a restore into the store stages them (runs of one pack, shared with worker processes
    for a large snapshot: ``unpack``; with ``judge``, a copy chromem would refuse is left out and
    returned as (path, why), as a restore into the store leaves it out), then made durable at once
    (one syncfs; else an fsync per file) before the folder is renamed to the target."""
    folders = sorted(folders)
    for rel, _mode in folders:
        dirs.makedirs(rel)
    targets: dict[str, list] = {}
    for entry in files:
        folder, _, name = entry.path.rpartition("/")
        targets.setdefault(entry.hash, []).append((entry.path, folder, name, True, storefs.safe_mode(entry.mode),
                                                   entry.mtime_ns))
    for folder in {entry.path.rpartition("/")[0] for entry in files}:   # once a folder, not once a file
        dirs.makedirs(folder)
    job = StageJob.over(repo, dirs.root, dirs.fds, judge, test_slow_io_delay())
    staged: list[RunResult] = []
    with fsutil.flushing(dirs.get("")):
        SharedStaging(repo, dirs.get, job, staged.append).run(targets, len(files))
    if not fsutil.sync_filesystem(dirs.get("")):
        for result in staged:
            for _path, folder, name in result.staged:
                fsutil.fsync_at(dirs.get(folder), name)
    for rel, mode in reversed(folders):
        os.fchmod(dirs.get(rel), storefs.safe_mode(mode, 0o700, folder=True))
    for fd in dirs.fds.values():
        os.fsync(fd)
    return [item for result in staged for item in result.refused]
