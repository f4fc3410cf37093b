"""Restore a snapshot into another folder (`guardian restore --target DIR`), leaving the store alone.

The target must not exist yet, or be an empty folder, and lie outside the store and outside
guardian's state dir: nothing of the user's is ever replaced. The snapshot is written into a
hidden sibling temp folder first (through folder fds opened without following symlinks, as restores
into the store are: ``storefs``; each blob checked against its hash, each file with its snapshot
mode and mtime, all made durable by one filesystem sync), then renamed to the target: the target
appears whole or not at all. A damaged blob removes only that temp folder (guardian's own) and
names the snapshot.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from guardian.errors import PATH_ERRNOS, Refused, RestoreError, SnapshotError
from guardian.local import fsutil, storefs
from guardian.local.paths import StatePaths
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore_plan import RestorePlan
from guardian.snapshots.capture import test_slow_io_delay
from guardian.snapshots.unpack import RunResult, SharedStaging, StageJob


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


def write_into_target(repo: Repository, plan: RestorePlan, target: Path) -> None:
    """Write the plan's files and folders (a plan over an empty folder: every action a ``write``) into
    a hidden sibling of ``target``, then rename it to ``target``: it appears whole or not at all."""
    parent_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)   # the user's path
    staging = f"{storefs.STAGE_PREFIX}{target.name}.{secrets.token_hex(4)}"
    try:
        try:
            os.mkdir(staging, 0o700, dir_fd=parent_fd)
            with storefs.DirFds.from_fd(os.open(staging, storefs.DIR_FLAGS, dir_fd=parent_fd),
                                        target.parent / staging) as dirs:
                _write_snapshot(repo, plan, dirs)
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(target.name, dir_fd=parent_fd)  # checked empty above; rmdir refuses if anything appeared
            os.rename(staging, target.name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            os.fsync(parent_fd)
        except SnapshotError as exc:
            raise RestoreError(f"snapshot {plan.snapshot_id} cannot be restored: {exc.message}; {target} was not "
                               "created", "pick an earlier --at (see `guardian snapshots`) and run `guardian verify`"
                               ) from None
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


def _write_snapshot(repo: Repository, plan: RestorePlan, dirs: storefs.DirFds) -> None:
    """Every folder and file of the plan into the staging folder ``dirs`` is rooted at, each
    write relative to a folder fd opened without following symlinks (a folder swapped for a
    symlink meanwhile is never written through). Modes keep permission bits only. The files are
    staged as a restore into the store stages them (runs of one pack, shared with worker processes
    for a large snapshot: ``unpack``; every byte, as the snapshot has it), then made durable at
    once (one syncfs; else an fsync per file) before the folder is renamed to the target."""
    folders = sorted(plan.create_dirs)
    for rel, _mode in folders:
        dirs.makedirs(rel)
    files = [a.entry for a in plan.actions if a.kind == "write"]
    targets: dict[str, list] = {}
    for entry in files:
        folder, _, name = entry.path.rpartition("/")
        targets.setdefault(entry.hash, []).append((entry.path, folder, name, True, storefs.safe_mode(entry.mode),
                                                   entry.mtime_ns))
    for folder in {entry.path.rpartition("/")[0] for entry in files}:   # once a folder, not once a file
        dirs.makedirs(folder)
    job = StageJob.over(repo, dirs.root, dirs.fds, False, test_slow_io_delay())
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
