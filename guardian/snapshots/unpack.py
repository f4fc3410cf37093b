"""A restore's files staged run by run: each run of adjacent frames of one pack is read, every blob
checked against its hash and judged as chromem would, and written, by this process and by worker
processes at once.

Where the time goes (a 100k-file restore into an empty folder on this VM's ext4): creating the files
(~12-40 us each on a rested disk) and the Python around each file (~30 us: the read, decompression,
sha256, chromem's verdict, the write, mode and mtime). A create holds its folder's lock, but only for
the create: everything else runs beside another process's create, so a large restore shares its runs
with workers (measured: 100k files into one folder, one process 3.05-4.67 s, two 2.66-3.77 s; the
restoring process alone, handing its bytes over from a worker that only prepared them, 6.4-8 s).

Each run is staged whole by whoever takes it: this process from the front of the list, workers from
the back. A worker writes only into folders this process opened, and refuses one that is not the
very same folder (device and inode) when it opens it itself, without following symlinks. Nothing
a worker stages is committed until this process has every run's result: a failed run removes its own
temp files, the others are unstaged with the rest, and a worker that died leaves at most guardian
temp files (never a store file) that the next restore clears.
"""

from __future__ import annotations

import os
import secrets
import stat as statmod
import time
from dataclasses import dataclass, field
from typing import Callable

from guardian.local import fsutil, storefs
from guardian.local.procpool import SharedWork, usable_cpus
from guardian.snapshots.capture import MAX_WORKERS, parallel_sizes
from guardian.snapshots.repository import Repository
from guardian.store.judge import prepare as prepare_judge, verdict

# A run: (pack id, [(digest, offset, frame length)]) adjacent frames of one pack, in offset order.
Run = tuple[str, list[tuple[str, int, int]]]
RUN_BLOBS = 1024   # blobs a run holds: the unit shared between the restoring process and its workers
# Where a blob is staged: (path in the plan, staged folder relative to the store root, file name,
# whole, mode, mtime_ns). whole: the folder lies in a folder staged whole, so the file is written
# under its final name; else under a temp name next to its destination.
Target = tuple[str, str, str, bool, int, int]
FolderFd = Callable[[str], int]


@dataclass
class RunResult:
    staged: list[tuple[str, str, str]] = field(default_factory=list)   # (path, folder, staged name)
    refused: list[tuple[str, str]] = field(default_factory=list)       # (path, why chromem refuses it)
    # documents judged loadable as written: (path, size, mtime_ns, inode, document ID), so the
    # restore's loadability check trusts them while their stat is unchanged (scan's ``known``)
    known: list[tuple[str, int, int, int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.staged) + len(self.refused)


@dataclass(frozen=True)
class StageJob:
    """What a worker needs to stage runs as this process would (picklable)."""

    repo_root: str
    store_root: str
    folders: dict[str, tuple[int, int]]   # staged folder -> (st_dev, st_ino) as this process opened it
    judge: bool
    delay: float
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    @classmethod
    def over(cls, repo: Repository, store_root: str, fds: dict[str, int], judge: bool, delay: float) -> "StageJob":
        """The job for staging into the folders ``fds`` (open here) under ``store_root``."""
        return cls(os.fspath(repo.root), os.fspath(store_root), _identities(fds), judge, delay)


def runs_of(groups: dict[str, list[tuple[str, int, int]]]) -> list[Run]:
    """``Repository.locate``'s groups cut into runs of RUN_BLOBS (the test hook's size when set)."""
    sizes = parallel_sizes()
    size = sizes.chunk_files if sizes.forced else RUN_BLOBS
    return [(pack_id, members[i:i + size]) for pack_id, members in sorted(groups.items())
            for i in range(0, len(members), size)]


def _identities(fds: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(st_dev, st_ino) of each open folder: what a worker's ``CheckedFolders`` insists on."""
    return {folder: (info.st_dev, info.st_ino) for folder, info in ((f, os.fstat(fd)) for f, fd in fds.items())}


def stage_run(repo: Repository, folder_fd: FolderFd, run: Run, targets: dict[str, list[Target]], judge: bool,
              delay: float = 0.0, reclaim: bool = False) -> RunResult:
    """Read, check, judge and write one run. SnapshotError if a blob is damaged or its pack gone; on
    any failure the temp files this run wrote are removed first (files written whole go with their
    staging folder). ``reclaim``: a run a dead worker may have half written: a file already standing
    in a whole-staged folder (guardian's own) is written again."""
    pack_id, frames = run
    result = RunResult()
    try:
        for digest, data in repo.read_run(pack_id, frames):
            stage_blob(folder_fd, data, targets[digest], judge, delay, result, reclaim)
    except BaseException:
        remove_temps(folder_fd, result)
        raise
    return result


def stage_blob(folder_fd: FolderFd, data: bytes, targets: list[Target], judge: bool, delay: float,
               result: RunResult, reclaim: bool = False) -> None:
    """Write ``data`` as each of its targets, except where chromem would refuse it as that path."""
    for path, folder, name, whole, mode, mtime_ns in targets:
        why, doc_id = verdict(path, data) if judge else (None, None)
        if why is not None:
            result.refused.append((path, why))
            continue
        if delay:
            time.sleep(delay)
        fd = folder_fd(folder)
        if whole:
            inode = write_new(fd, name, data, mode, mtime_ns, reclaim)
            result.staged.append((path, folder, name))
        else:
            name = storefs.write_temp_at(fd, name, data, mode, mtime_ns, sync=False)
            result.staged.append((path, folder, name))
            inode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_ino if doc_id is not None else 0
        if doc_id is not None:
            result.known.append((path, len(data), mtime_ns, inode, doc_id))


def write_new(dir_fd: int, name: str, data: bytes, mode: int, mtime_ns: int, reclaim: bool = False) -> int:
    """Create ``name`` (it must not exist) with ``data``, permission bits and mtime; no fsync (the
    restore makes all its files durable at once, with one syncfs). No early writeback per file
    either: ``sync_file_range`` cost ~35 us a file (3.5 s of a 100k-file restore) to save ~1 s of
    the final sync. ``reclaim``: a regular file already there is guardian's own half-staged copy
    (this is a staging folder) and is replaced. Returns the file's inode number."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, mode, dir_fd=dir_fd)   # in a staging folder only guardian can enter
    except FileExistsError:
        info = storefs._lstat_or_none(name, dir_fd)
        if not (reclaim and info is not None and statmod.S_ISREG(info.st_mode)):
            raise
        os.unlink(name, dir_fd=dir_fd)
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    try:
        fsutil.write_all(fd, data)
        os.utime(fd, ns=(mtime_ns, mtime_ns))
        info = os.fstat(fd)
        if statmod.S_IMODE(info.st_mode) != mode:   # the umask took bits away
            os.fchmod(fd, mode)
        return info.st_ino
    finally:
        os.close(fd)


def remove_temps(folder_fd: FolderFd, result: RunResult) -> None:
    """Remove the temp files of ``result`` (a failed run's); files staged under final names stay for
    their staging folder's removal."""
    for _path, folder, name in result.staged:
        if storefs.is_guardian_temp(name):
            try:
                storefs.unlink_temp_at(folder_fd(folder), name)
            except OSError:
                continue


class SharedStaging:
    """A restore's runs staged by this process and by worker processes at once (``procpool.SharedWork``:
    workers from the back of the list, this process from the front), each result handed to ``done``
    as it comes (this thread). A small restore, or one where processes cannot start, stages every
    run here; the result is the same either way."""

    def __init__(self, repo: Repository, folder_fd: FolderFd, job: StageJob, done: Callable[[RunResult], None]) -> None:
        self.repo, self.folder_fd, self.job, self.done = repo, folder_fd, job, done

    def run(self, targets: dict[str, list[Target]], files: int) -> None:
        """Stage every target: the packs' runs (shared with workers when ``files`` is large), then the
        loose blobs of an older repository layout, here. Each result goes to ``done``, a failed
        loose blob's too (what it wrote is unstaged with the rest)."""
        groups, other = self.repo.locate(targets)
        self._runs(runs_of(groups), targets, files)
        for digest in other:
            result = RunResult()
            try:
                stage_blob(self.folder_fd, self.repo.read_blob(digest), targets[digest], self.job.judge,
                           self.job.delay, result)
            finally:
                self.done(result)

    def _runs(self, runs: list[Run], targets: dict[str, list[Target]], files: int) -> None:
        prepare_judge()
        workers = min(MAX_WORKERS, usable_cpus() - 1)
        sizes = parallel_sizes()
        if files < sizes.min_files or len(runs) < 2 or workers < 1:
            for run in runs:
                self.done(self._local(run, targets))
            return

        def submit(pool, n: int):
            return pool.submit(stage_in_worker, self.job, runs[n], _targets_of(runs[n], targets))

        def local(n: int, retaken: bool) -> None:   # retaken: a dead worker may have half written it
            self.done(self._local(runs[n], targets, reclaim=retaken))

        SharedWork(workers, submit, local, lambda _n, result: self.done(result), sizes.forced).run(len(runs))

    def _local(self, run: Run, targets: dict, reclaim: bool = False) -> RunResult:
        return stage_run(self.repo, self.folder_fd, run, targets, self.job.judge, self.job.delay, reclaim)


def _targets_of(run: Run, targets: dict[str, list[Target]]) -> dict[str, list[Target]]:
    return {digest: targets[digest] for digest, _, _ in run[1]}


class CheckedFolders:
    """A worker's folder fds: each opened from the store root without following symlinks, and
    refused unless it is the very folder the restoring process opened (same device and inode)."""

    def __init__(self, root: str, expected: dict[str, tuple[int, int]]) -> None:
        self.dirs = storefs.DirFds(root)
        self.expected = expected
        self.checked: dict[str, int] = {}

    def __call__(self, folder: str) -> int:
        fd = self.checked.get(folder)
        if fd is None:
            fd = self.dirs.get(folder)
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) != self.expected.get(folder):
                self.dirs.forget(folder)
                raise storefs.UnsafeFolder(folder, "replaced while the restore ran")
            self.checked[folder] = fd
        return fd


_WORKER_STATE: dict[str, tuple[Repository, CheckedFolders]] = {}


def stage_in_worker(job: StageJob, run: Run, targets: dict[str, list[Target]]) -> RunResult:
    """In a worker process: stage one run as the restoring process would."""
    state = _WORKER_STATE.get(job.token)
    if state is None:
        for _repo, old in _WORKER_STATE.values():
            old.dirs.close()
        _WORKER_STATE.clear()
        prepare_judge()
        state = _WORKER_STATE[job.token] = (Repository(job.repo_root), CheckedFolders(job.store_root, job.folders))
    repo, folders = state
    return stage_run(repo, folders, run, targets, job.judge, job.delay)
