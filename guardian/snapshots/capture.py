"""Capture a snapshot's files: per file, reuse the previous row, or read, judge, hash and pack it.

Reading is CPU-bound Python per file (open, two fstats, read, chromem's verdict, sha256, zstd, the
row). Threads made it slower, not faster: each file releases the GIL several times, and a first
snapshot of 100k files on three threads made 3.1 M futex calls and took 14.6 s of CPU against
7.9 s on one (``strace -c -f``). So a small capture reads on the taking thread, and a large one
(a first snapshot, a store rewritten) is split into chunks shared between the taking process and
worker processes (``guardian.local.procpool``), each writing its own packs. A worker finishes
(fsyncs and renames) its packs at the end of each chunk and hands them over with the chunk's rows;
the taking process adopts them, and nothing refers to any pack until the manifest is written after
every pack is durable, so a kill at any point leaves old snapshots only (and a complete pack that
nothing refers to yet, reused by the next take, or a temp file the next writer removes).
"""

from __future__ import annotations

import bisect
import contextlib
import operator
import os
import secrets
import stat as statmod
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from guardian.format import layout
from guardian.local.procpool import SharedWork, usable_cpus
from guardian.snapshots.collection_files import ABSENT_REASON, is_document, metadata_path
from guardian.snapshots.good_copies import names_nothing
from guardian.snapshots.manifest import FLAG_ABSENT, FLAG_DAMAGED, FLAG_RACY, FLAG_UNSTABLE
from guardian.snapshots.packs import FinishedPack
from guardian.snapshots.repository import Repository, sha256_hex
from guardian.store.judge import damage_of, prepare as prepare_judge
from guardian.store.scan import no_cyclic_gc

READ_TRIES = 3
PARALLEL_MIN_FILES = 10_000   # fewer files to read: the taking thread alone (a worker costs ~0.3 s to start)
CHUNK_FILES = 2_000           # files per chunk handed to a worker (about one pack's worth)
MAX_WORKERS = 3

# A file-list row: [path, size, mode, mtime_ns, inode, hash, flags] (see manifest.ManifestEntry.row).
PATH, SIZE, MODE, MTIME, INODE, HASH, FLAGS = range(7)
ROW_PATH = operator.itemgetter(PATH)


def test_slow_io_delay() -> float:
    """TEST-ONLY hook: GUARDIAN_TEST_SLOW_IO=<seconds> sleeps per file to widen crash windows."""
    try:
        return max(0.0, float(os.environ.get("GUARDIAN_TEST_SLOW_IO", "0") or 0))
    except ValueError:
        return 0.0


class ParallelSizes(NamedTuple):
    min_files: int      # fewer files than this: no worker processes
    chunk_files: int    # files per chunk (capture) or blobs per run (restore)
    forced: bool        # set by the test hook: the taker waits for its workers before it reads


def parallel_sizes() -> ParallelSizes:
    """PARALLEL_MIN_FILES and CHUNK_FILES, or with the TEST-ONLY GUARDIAN_TEST_PARALLEL_CHUNK=N:
    workers from the first file and chunks of N, so a test drives the worker processes on a small
    store (and the taker waits for the workers to be up, so they surely get chunks whatever the
    machine's speed)."""
    try:
        chunk = int(os.environ.get("GUARDIAN_TEST_PARALLEL_CHUNK", "") or 0)
    except ValueError:
        chunk = 0
    return ParallelSizes(1, chunk, True) if chunk > 0 else ParallelSizes(PARALLEL_MIN_FILES, CHUNK_FILES, False)


def read_stable(path: str, tries: int = READ_TRIES, sleep=time.sleep) -> tuple[bytes, os.stat_result] | None:
    """Read a file whose size and mtime did not change during the read; None if it kept changing.
    Opens only a regular file (never through a symlink; a FIFO cannot block the open)."""
    for attempt in range(tries):
        fd = os.open(path, READ_FLAGS)
        try:
            before = os.fstat(fd)
            if not statmod.S_ISREG(before.st_mode):
                raise FileNotFoundError(f"{path} is no longer a regular file")
            data = _read_fd(fd, before.st_size)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns) and len(data) == after.st_size:
            return data, after
        sleep(0.01 * (attempt + 1))
    return None


READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _read_fd(fd: int, size: int) -> bytes:
    """All of the file (one read for the usual small file; more if it grew)."""
    data = os.read(fd, size + 1)
    if len(data) <= size:
        return data
    chunks = [data]
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@dataclass
class CaptureJob:
    """What a worker process needs to capture files exactly as the taking process would."""

    repo_root: str
    store_root: str
    started_ns: int
    racy_window_ns: int
    take: str   # this take's token: a worker keeps one Repository per take
    delay: float = 0.0   # the test hook's per-file sleep (a worker's environment is the forkserver's)


@dataclass
class ChunkResult:
    """A worker's chunk: its rows (in the chunk's order) and what the taking process adds up."""

    rows: list
    read_files: int = 0
    new_blobs: int = 0
    new_bytes: int = 0
    unreadable: list = field(default_factory=list)
    damaged: list = field(default_factory=list)
    contents: dict = field(default_factory=dict)
    packs: list[FinishedPack] = field(default_factory=list)


class Capture:
    """One snapshot in progress: decides per file whether to reuse, read or mark it.

    Works on validated file-list rows (no per-entry objects): an unchanged file reuses the previous
    snapshot's row object as is, so an unchanged store costs a stat walk and one dict lookup per file.
    """

    def __init__(self, repo: Repository, root: Path, previous_rows: list[list], existing_blobs: set[str],
                 started_ns: int, reader: Callable, progress, previous_by_path: dict | None = None, *,
                 racy_window_ns: int, delay: float | None = None) -> None:
        self.repo, self.root, self.reader, self.progress = repo, root, reader, progress
        self.previous = previous_by_path if previous_by_path is not None else {row[PATH]: row for row in previous_rows}
        self.previous_rows = previous_rows
        self.existing_blobs = existing_blobs
        self.started_ns = started_ns
        self.racy_window_ns = racy_window_ns
        self.root_prefix = str(root) + os.sep
        self.new_blobs = 0
        self.new_bytes = 0
        self.read_files = 0
        self.unreadable: list[tuple[str, str]] = []
        self.damaged: list[tuple[str, str]] = []
        self.contents: dict[str, bytes] = {}   # metadata files read this time (for names)
        self.gone: dict[str, list] = {}        # previous rows of the files an incremental take saw go
        self.delay = test_slow_io_delay() if delay is None else delay

    def capture_all(self, files: dict[str, os.stat_result]) -> list[list]:
        """Rows sorted by path: reuse what the stat cache allows (no read); read the rest (in worker
        processes too when there are many)."""
        rows: dict[str, list | None] = {}
        to_read = []
        previous, blobs = self.previous, self.existing_blobs
        # same paths as last time: sort the previous snapshot's (already sorted) order, which is cheap
        in_order = sorted(previous) if files.keys() == previous.keys() else sorted(files)
        for rel in in_order:
            info, old = files[rel], previous.get(rel)
            # unchanged: same size, mtime and inode as in the previous snapshot, not flagged, blob present
            # (inlined: this loop runs once per file of the store)
            if (old is not None and old[SIZE] == info.st_size and old[MTIME] == info.st_mtime_ns
                    and old[INODE] == info.st_ino and not old[FLAGS] and old[HASH] in blobs):
                mode = statmod.S_IMODE(info.st_mode)
                rows[rel] = old if old[MODE] == mode else [rel, old[SIZE], mode, old[MTIME], old[INODE], old[HASH], 0]
            else:
                rows[rel] = None
                to_read.append(rel)
        if self.progress:
            self.progress.advance(len(files) - len(to_read))
        if to_read:
            rows.update(zip(to_read, self.capture_many(to_read)))
        return [row for row in rows.values() if row is not None]

    def capture_many(self, to_read: list[str]) -> list[list | None]:
        workers = min(MAX_WORKERS, usable_cpus() - 1)
        sizes = parallel_sizes()
        if len(to_read) < max(sizes.min_files, 2 * sizes.chunk_files) or workers < 1 or self.reader is not read_stable:
            return self.capture_chunk(to_read)
        return ParallelCapture(self, workers, sizes).run(to_read)

    def capture_chunk(self, chunk: list[str]) -> list[list | None]:
        """Read a run of files on this thread (into this thread's pack)."""
        return [self.capture_one(rel) for rel in chunk]

    def capture_one(self, rel: str) -> list | None:
        try:
            return self._read(rel)
        finally:
            if self.progress:
                self.progress.advance(1)

    def _read(self, rel: str) -> list | None:
        if self.delay:
            time.sleep(self.delay)
        try:
            result = self.reader(self.root_prefix + rel)
        except FileNotFoundError:
            return None  # deleted since the walk: not part of this snapshot
        except OSError as exc:
            self.unreadable.append((rel, f"unreadable: {exc.strerror or exc}"))
            return None
        self.read_files += 1
        if result is None:
            return self._unstable(rel)
        data, info = result
        damage = damage_of(rel, data)
        if damage is None and rel.endswith(METADATA_ENDINGS) and names_nothing(rel, data):
            damage = EMPTY_NAME_REASON
        if damage is not None:
            return self._damaged(rel, damage, info)
        digest = sha256_hex(data)
        written = self.repo.put_blob(data, digest)
        if written:
            self.note_written(written)
        if rel.split("/")[-1].startswith(layout.METADATA_STEM + "."):
            self.contents[rel] = data
        flags = FLAG_RACY if info.st_mtime_ns >= self.started_ns - self.racy_window_ns else 0
        return [rel, len(data), statmod.S_IMODE(info.st_mode), info.st_mtime_ns, info.st_ino, digest, flags]

    def note_written(self, written: int) -> None:
        self.new_blobs += 1
        self.new_bytes += written

    def _damaged(self, rel: str, why: str, info: os.stat_result) -> list:
        """Chromem would refuse the file as read: keep the previous good copy (if any), flagged."""
        self.damaged.append((rel, why))
        return self._flagged(rel, info, FLAG_DAMAGED)

    def _flagged(self, rel: str, info: os.stat_result, flag: int) -> list:
        """The previous snapshot's row (if its blob is stored) with ``flag``, else the file as it is
        now with no blob: a copy that is damaged or still changing never becomes the newest one."""
        old = self.previous.get(rel)
        if old is not None and old[HASH] and self.repo.has_blob(old[HASH]):
            return [rel, old[SIZE], old[MODE], old[MTIME], old[INODE], old[HASH], flag]
        return [rel, info.st_size, statmod.S_IMODE(info.st_mode), info.st_mtime_ns, info.st_ino, None, flag]

    def capture_changes(self, changes: dict[str, os.stat_result | None]) -> tuple[list[list], dict[str, list]]:
        """The previous rows with ``changes`` applied (None: gone), as a sorted list and by path.
        Changed files are read, never reused: an event said they changed, and a rewrite within one
        mtime tick keeps size and mtime. The previous list and dict are updated IN PLACE (a change
        costs a bisect and a C-level move, not a copy of 100k rows): the baseline they came from is
        spent, and continuous capture drops it if the snapshot then fails."""
        rows, order = self.previous, self.previous_rows
        to_read = [rel for rel, info in changes.items() if info is not None]
        read = [self.capture_one(rel) for rel in to_read]  # one thread: the new blobs go into one pack
        gone = {rel for rel, info in changes.items() if info is None}
        for rel, row in zip(to_read, read):
            if row is None:
                gone.add(rel)
                continue
            if rel in rows:
                order[bisect.bisect_left(order, rel, key=ROW_PATH)] = row
            else:
                bisect.insort(order, row, key=ROW_PATH)
            rows[rel] = row
        for rel in gone:
            dropped = rows.pop(rel, None)
            if dropped is not None:
                del order[bisect.bisect_left(order, rel, key=ROW_PATH)]
                self.gone[rel] = dropped
        return order, rows

    def keep_lost_metadata(self, rows: list[list], by_path: dict | None, compress: bool, folders: Iterable[str],
                           older: Callable[[set[str]], dict] | None = None) -> list[str]:
        """Top ``folders`` (every one, or those that changed) holding documents and no good metadata file (deleted,
        cut, or being written with no good copy read): damage, like a damaged file, and chromem refuses
        the whole store for it. Each gets the previous snapshot's good copy of its metadata (else, with
        ``older``, the one an older snapshot names: ``older(folders) -> {folder: FoundCopy}``), flagged
        damaged, and absent when no file was there; with no good copy anywhere the row says so and has
        no content. ``rows`` (sorted by path) and ``by_path`` are updated in place; returns the paths
        whose rows this changed."""
        gaps = {folder for folder in folders if _lacks_metadata(rows, folder, compress)}   # a bisect or two each
        if not gaps:
            return []
        found = {}
        current = {}
        for folder in sorted(gaps):
            rel = metadata_path(folder, compress)
            at = bisect.bisect_left(rows, rel, key=ROW_PATH)
            current[folder] = rows[at] if at < len(rows) and rows[at][PATH] == rel else None
            old = self.previous.get(rel) or self.gone.get(rel)
            if old is not None and old[HASH] and self.repo.has_blob(old[HASH]):
                found[folder] = old
        missing = set(gaps) - set(found)
        if missing and older is not None:
            found.update({folder: copy.row for folder, copy in older(missing).items()})
        changed = []
        for folder in sorted(gaps):
            rel, now, good = metadata_path(folder, compress), current[folder], found.get(folder)
            if now is None:
                self.damaged.append((rel, ABSENT_REASON))
            flags = FLAG_DAMAGED | (FLAG_ABSENT if now is None else 0)
            if good is not None:
                row = [rel, good[SIZE], good[MODE], good[MTIME], good[INODE], good[HASH], flags]
            elif now is None:
                row = [rel, 0, 0, 0, 0, None, flags]
            else:
                continue   # damaged or unstable as read, no good copy anywhere: already flagged so
            if now is None:
                bisect.insort(rows, row, key=ROW_PATH)
            else:
                rows[bisect.bisect_left(rows, rel, key=ROW_PATH)] = row
            if by_path is not None:
                by_path[rel] = row
            changed.append(rel)
        return changed

    def _unstable(self, rel: str) -> list | None:
        try:
            info = os.lstat(self.root / rel)
        except FileNotFoundError:
            return None  # it kept changing, then went: not part of this snapshot
        return self._flagged(rel, info, FLAG_UNSTABLE)

    def merge(self, result: ChunkResult) -> list:
        """Add a worker's chunk to this capture (its packs adopted by the repository); its rows."""
        self.repo.adopt(result.packs)
        self.read_files += result.read_files
        self.new_blobs += result.new_blobs
        self.new_bytes += result.new_bytes
        self.unreadable.extend(result.unreadable)
        self.damaged.extend(result.damaged)
        self.contents.update(result.contents)
        if self.progress:
            self.progress.advance(len(result.rows))
        return result.rows


METADATA_ENDINGS = tuple("/" + layout.METADATA_STEM + ext for ext in layout.EXTENSIONS)
EMPTY_NAME_REASON = "the metadata names no collection (chromem refuses its documents)"


def _lacks_metadata(rows: list[list], folder: str, compress: bool) -> bool:
    """Whether the top ``folder`` holds a document and no metadata row with content (``rows`` sorted by
    path): a bisect for the metadata, then the folder's rows up to its first document."""
    rel = metadata_path(folder, compress)
    at = bisect.bisect_left(rows, rel, key=ROW_PATH)
    if at < len(rows) and rows[at][PATH] == rel and rows[at][HASH] is not None:
        return False
    prefix = folder + "/"
    at = bisect.bisect_left(rows, prefix, key=ROW_PATH)
    while at < len(rows) and rows[at][PATH].startswith(prefix):
        if is_document(rows[at][PATH], compress):
            return True
        at += 1
    return False


class ParallelCapture:
    """Chunks of files read by this process and by worker processes at once (``procpool.SharedWork``:
    workers from the end of the list, this process from the front). A worker's error (a full disk)
    stops the capture after every chunk already running has come back, merged so that their packs
    are this take's and removed with it; a pool that cannot start or breaks leaves its chunks to
    this process."""

    def __init__(self, capture: Capture, workers: int, sizes: ParallelSizes) -> None:
        self.capture, self.workers, self.sizes = capture, workers, sizes
        self.job = CaptureJob(os.fspath(capture.repo.root), os.fspath(capture.root), capture.started_ns,
                              capture.racy_window_ns, secrets.token_hex(8), capture.delay)

    def run(self, to_read: list[str]) -> list[list | None]:
        size = self.sizes.chunk_files
        chunks = [to_read[i:i + size] for i in range(0, len(to_read), size)]
        done: dict[int, list] = {}

        def submit(pool, n: int):
            return pool.submit(capture_in_worker, self.job, chunks[n], self._previous(chunks[n]))

        def local(n: int, _retaken: bool) -> None:   # a dead worker's packs were never adopted: read again
            done[n] = self.capture.capture_chunk(chunks[n])

        def merge(n: int, result: ChunkResult) -> None:
            done[n] = self.capture.merge(result)

        SharedWork(self.workers, submit, local, merge, self.sizes.forced).run(len(chunks))
        return [row for n in range(len(chunks)) for row in done[n]]

    def _previous(self, chunk: list[str]) -> dict[str, list]:
        previous = self.capture.previous
        return {rel: previous[rel] for rel in chunk if rel in previous}


_WORKER_REPOSITORY: dict[str, Repository] = {}


def capture_in_worker(job: CaptureJob, chunk: list[str], previous: dict[str, list]) -> ChunkResult:
    """In a worker process: capture ``chunk`` as the taking process would, packs finished at the end.
    On a failure the packs of this chunk are removed before the error goes back."""
    repo = _WORKER_REPOSITORY.get(job.take)
    if repo is None:
        _WORKER_REPOSITORY.clear()
        prepare_judge()
        repo = _WORKER_REPOSITORY[job.take] = Repository(job.repo_root)
    capture = Capture(repo, Path(job.store_root), [], set(), job.started_ns, read_stable, None, previous,
                      racy_window_ns=job.racy_window_ns, delay=job.delay)
    try:
        with no_cyclic_gc():   # rows and stat results, no cycles among them
            rows = capture.capture_chunk(chunk)
        packs = repo.finish_packs()
    except BaseException:
        _WORKER_REPOSITORY.clear()
        repo.abort_writes()
        for pack_id in repo.new_packs():
            with contextlib.suppress(OSError):
                repo.delete_pack(pack_id)
        raise
    return ChunkResult(rows, capture.read_files, capture.new_blobs, capture.new_bytes, capture.unreadable,
                       capture.damaged, capture.contents, packs)
