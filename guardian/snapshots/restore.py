"""Execute a restore: choose the snapshot, list the store, plan (pure), stage, then commit.

Staging writes every file to a temp name next to its destination (guardian's ``TEMP_PREFIX``; never
ending in ``.gob``/``.gob.gz``, so chromem ignores it) and verifies each blob against its hash. If any
blob is damaged the staged files are removed and the store is left as it was. Committing renames
each staged file into place; whatever it replaces or moves aside goes to quarantine first, so a
restore can be undone. Every path stays either old or new: never torn, never half-written.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import secrets
import stat as statmod
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from guardian.errors import Refused, RestoreError, SnapshotError, StoreError
from guardian.format.layout import collection_dir_name
from guardian.local import fsutil, storefs
from guardian.logs import get_logger
from guardian.local.fsutil import TEMP_PREFIX
from guardian.local.lock import store_lock
from guardian.local.quarantine import Quarantine
from guardian.snapshots.manifest import Manifest
from guardian.snapshots.repository import Repository
from guardian.store.judge import prepare as prepare_judge
from guardian.store.scan import no_cyclic_gc, scan_store
from guardian.snapshots.restore_plan import CurrentFile, RestorePlan, plan_restore, scope_for_collection
from guardian.snapshots.restore_inputs import gather_inputs, known_names, store_rebuilt
from guardian.snapshots.capture import test_slow_io_delay
from guardian.snapshots.unpack import RunResult, SharedStaging, StageJob
from guardian.snapshots.timespec import nothing_at_or_before, pick_snapshot
from guardian.local.paths import StatePaths


SYNC_WORKERS = 8   # only where there is no syncfs: fsyncs in flight
MAX_HASHED = 64 << 20   # guardian.format.chromem.MAX_FILE_BYTES: a larger file is no real document


@functools.lru_cache(maxsize=16384)
def id_time(snapshot_id: str) -> datetime:
    """When a snapshot was taken, from its id (cached: continuous capture lists ~1,400 ids after each of
    its snapshots, for retention, the metrics and the status, and strptime costs ~6 µs each)."""
    return datetime.strptime(snapshot_id[:23], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)


def choose_snapshot(repo: Repository, at: datetime | None) -> str:
    """The id of the newest snapshot taken at or before ``at``; Refused if there is none."""
    ids = repo.list_ids()
    if not ids:
        raise Refused("there are no snapshots of this store yet", "take one with `guardian snapshot`")
    chosen = pick_snapshot([(i, id_time(i)) for i in ids], at)
    if chosen is None:
        raise nothing_at_or_before(at, id_time(ids[0]), "", "`guardian snapshots`")
    return chosen


def read_snapshot(repo: Repository, snapshot_id: str) -> Manifest:
    try:
        return repo.read_manifest(snapshot_id)
    except SnapshotError as exc:
        raise RestoreError(f"snapshot {snapshot_id} is damaged: {exc.message}",
                           "pass an earlier --at (see `guardian snapshots`) and run `guardian verify`") from None


def choose_readable(repo: Repository, at: datetime | None) -> tuple[str, Manifest, list[str]]:
    """The newest snapshot at or before ``at`` whose manifest reads cleanly; damaged (or hostile)
    manifests newer than it are skipped with a warning and returned, never fatal on their own."""
    snapshot_id = choose_snapshot(repo, at)
    ids = [i for i in repo.list_ids() if i <= snapshot_id]
    skipped: list[str] = []
    for candidate in reversed(ids):
        try:
            return candidate, repo.read_manifest(candidate), skipped
        except SnapshotError as exc:
            skipped.append(candidate)
            get_logger("guardian.restore").warning("snapshot_skipped", snapshot=candidate, error=exc.message)
    raise RestoreError(f"every snapshot at or before the requested time is damaged ({len(skipped)} skipped; "
                       f"newest: {snapshot_id})", "run `guardian verify`, or pass a later --at")


@dataclass
class StoreState:
    current: dict[str, CurrentFile] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)   # guardian's own staged temp files


def _sha256_file(path: str) -> str | None:
    """The content hash of a regular file; None for anything else (never opens a FIFO or device)."""
    try:
        return storefs.sha256_regular(path)
    except OSError:
        return None


def read_store_state(root: Path, scope: str | None) -> StoreState:
    """Everything in the store (or in one folder of it) now, with content hashes. Hashed on this
    thread: on three threads (a future per file, GIL handoffs) 100k files took 8-13 s, the loop
    2.4-2.9 s (a 100k x 384 store, ``read_store_state`` timed alone)."""
    state = StoreState()
    start = root / scope if scope else root
    if scope and os.path.lexists(start):
        info = os.lstat(start)
        state.current[scope] = CurrentFile(scope, info.st_size, None, is_dir=statmod.S_ISDIR(info.st_mode))
        if not statmod.S_ISDIR(info.st_mode):
            return state
    elif scope:
        return state
    regular: list[tuple[str, int, str]] = []   # (rel, size, path) of files to hash
    pending = [(f"{scope}/" if scope else "", str(start))]
    while pending:
        prefix, folder = pending.pop()
        for entry in os.scandir(folder):
            _note_entry(state, prefix + entry.name, entry, pending, regular)
    for rel, size, path in regular:   # on this thread: a future per file cost more than the hash
        state.current[rel] = CurrentFile(rel, size, _sha256_file(path))
    return state


def _note_entry(state: StoreState, rel: str, entry: os.DirEntry, pending: list, regular: list) -> None:
    if entry.name.startswith(TEMP_PREFIX):
        state.leftovers.append(rel)
        return
    info = entry.stat(follow_symlinks=False)
    if statmod.S_ISDIR(info.st_mode):
        state.current[rel] = CurrentFile(rel, 0, None, is_dir=True)
        pending.append((rel + "/", entry.path))
    elif statmod.S_ISREG(info.st_mode) and info.st_size <= MAX_HASHED:
        regular.append((rel, info.st_size, entry.path))
    else:
        state.current[rel] = CurrentFile(rel, info.st_size, None)


@dataclass
class RestoreResult:
    snapshot_id: str
    snapshot_time: datetime
    scope: str | None
    collection: str | None
    plan: RestorePlan
    dry_run: bool
    quarantined: list[str] = field(default_factory=list)
    refused_damaged: list[dict] = field(default_factory=list)  # snapshot copies chromem would refuse: not written
    skipped: list[str] = field(default_factory=list)    # newer snapshots passed over: damaged manifests
    loadable: bool | None = None
    load_error: str = ""

    def to_dict(self) -> dict:
        return {"snapshot": self.snapshot_id,
                "snapshot_time": self.snapshot_time.isoformat().replace("+00:00", "Z"),
                "collection": self.collection, "scope": self.scope, "dry_run": self.dry_run,
                "counts": self.plan.counts(), "quarantine_entries": self.quarantined,
                "loadable": self.loadable, "load_error": self.load_error, "skipped_damaged": self.skipped,
                "refused_damaged": self.refused_damaged,
                **{key: value for key, value in self.plan.to_dict().items()
                   if key in ("actions", "substituted", "left_out")}}


def resolve_scope(manifest: Manifest, collection: str | None) -> str | None:
    if collection is None:
        return None
    scope = scope_for_collection(collection, manifest.collections, collection_dir_name)
    if scope is None:
        names = ", ".join(sorted(c.name for c in manifest.collections if c.name)) or "none"
        raise Refused(f"snapshot {manifest.id} has no collection {collection!r} (it has: {names})",
                           "check the name, or pick another --at")
    return scope


def restore_store(paths: StatePaths, at: datetime | None, collection: str | None = None, *,
                  dry_run: bool = False, confirm: Callable[[RestorePlan], bool] | None = None,
                  lock_timeout: float = 30.0, progress=None, check_load: bool = True,
                  snapshot_id: str | None = None, allow_damaged: bool = False) -> RestoreResult:
    """Restore the store (or one collection) to the newest snapshot at or before ``at`` (or to
    ``snapshot_id``, as a restore from a replica does after fetching it).

    A snapshot copy chromem would refuse (possible in snapshots taken before damage was flagged) is
    not written unless ``allow_damaged``: the file in the store stays as it is, and the result says so."""
    repo = Repository(paths.snapshots)
    root = paths.store
    if not root.is_dir():
        raise StoreError(f"the store {root} is not a folder", "create the folder or pass the right --store")
    if not dry_run:
        prepare_judge()  # the decoder's import, not while holding the lock
    # a dry run only reads (manifests are committed by one rename, so a concurrent writer never shows
    # it half a snapshot): it takes no lock, so it works with a read-only state or lock folder
    held = contextlib.nullcontext() if dry_run else store_lock(paths.lock_file, timeout=lock_timeout)
    with held, no_cyclic_gc():   # 100k entries, actions and staged blobs, none in a cycle: 7% of a restore's CPU
        if snapshot_id:
            manifest, skipped = read_snapshot(repo, snapshot_id), []
        else:
            snapshot_id, manifest, skipped = choose_readable(repo, at)
        scope = resolve_scope(manifest, collection)
        inputs = gather_inputs(repo, manifest, scope, known_names(paths.catalog_file, collection), allow_damaged)
        state = read_store_state(root, scope)
        plan = plan_restore(snapshot_id, manifest.files or [], manifest.dirs, state.current, scope, inputs)
        result = RestoreResult(snapshot_id, manifest.time, scope, collection, plan, dry_run, skipped=skipped)
        if dry_run:
            return result
        if plan.disturbs_store and confirm is not None and not confirm(plan):
            raise Refused("restore cancelled; the store was not changed", "pass --force to skip the question")
        storefs.clean_guardian_temps(root)
        store_rebuilt(repo, plan.rebuilt_blobs(inputs))
        executor = Executor(root, repo, Quarantine(paths), plan, progress, allow_damaged)
        result.quarantined = executor.run()
        result.refused_damaged = sorted(executor.refused, key=lambda item: item["path"])
    if check_load:
        result.loadable, result.load_error = check_loadable(root, manifest.compress, executor.known)
    return result


def check_loadable(root: Path, compress: bool | None, known: dict | None = None) -> tuple[bool | None, str]:
    """chromem's verdict on the store now. ``known``: documents this restore judged as it wrote them
    (not read again while their size, mtime and inode are unchanged: a 100k restore's check went
    from ~3 s to a listing); the store's structure, every other file and every metadata file are
    checked as always."""
    scan = scan_store(root, compress, known=known)
    return bool(scan.loadable), scan.error or ""


def _is_small_regular(name: str, folder_fd: int) -> bool:
    info = storefs._lstat_or_none(name, folder_fd)
    return info is not None and statmod.S_ISREG(info.st_mode) and info.st_size <= MAX_HASHED


class Executor:
    """Carries out a plan: move aside blockers, stage (verified), make the staged bytes durable at
    once, then commit by renames.

    Every write, rename and mkdir is relative to a folder fd opened without following symlinks
    (``storefs.DirFds``, one per folder for the whole run): a folder swapped for a symlink while the
    restore runs cannot redirect a single write outside the store; a folder that already is a
    symlink is refused before anything is written. A worker process staging runs of a large restore
    opens the same folders itself, the same way, and refuses one that is not the very folder opened
    here (``unpack.CheckedFolders``).

    Durability is batched: staged files are written without an fsync each, then one ``syncfs`` of
    the store's filesystem (or, where there is none, an fsync of every staged file) makes all of them
    durable before the first rename; the renamed-into folders are fsynced at the end. A top-level
    folder the store does not have at all (a lost collection, or a restore into an empty store) is
    staged whole inside ``.guardian-tmp-restore.*/`` (chromem skips a folder that holds only folders)
    and renamed into place in one step, so it appears complete or not at all.
    """

    def __init__(self, root: Path, repo: Repository, quarantine: Quarantine, plan: RestorePlan, progress,
                 allow_damaged: bool = False) -> None:
        self.root, self.repo, self.quarantine, self.plan, self.progress = root, repo, quarantine, plan, progress
        self.allow_damaged = allow_damaged
        self.refused: list[dict] = []
        self.reason = f"restore of snapshot {plan.snapshot_id}"
        self.dirs = storefs.DirFds(root)
        self.staged: dict[str, tuple[int, str]] = {}   # rel -> (folder fd, staged name)
        self.created_dirs: list[str] = []
        self.entries: list[str] = []
        self.touched: set[int] = set()
        self.delay = test_slow_io_delay()
        self.stage_dir: str | None = None              # the folder whole new folders are staged in
        self.whole: list[str] = []                     # top-level folders staged whole
        self.whole_set: set[str] = set()
        self.folder_fds: dict[str, int] = {}          # staged folder of a file -> its fd (from self.dirs)
        self.known: dict[str, dict[str, list]] = {}   # documents judged as written (scan_store's ``known``)

    def run(self) -> list[str]:
        to_write = [a for a in self.plan.actions if a.kind in ("write", "replace")]
        if self.progress:
            self.progress.start(len(to_write))
        try:
            try:
                self._move_blockers()
                self._create_dirs()
                with fsutil.flushing(self.dirs.get("")):   # the device writes while files are staged
                    self._stage(to_write)
                self._make_durable()
            except BaseException:
                self._unstage()
                raise
            finally:
                if self.progress:
                    self.progress.close()
            self._commit()
        except storefs.UnsafeFolder as exc:
            raise RestoreError(f"refusing to write {exc.filename} through a {exc.what}",
                               "replace the symlink by a folder, or restore without it") from None
        except OSError as exc:
            raise RestoreError(f"the restore stopped: {exc.strerror or exc} ({exc.filename or 'store'}); every "
                               "path holds its old or its new bytes and what was replaced is in quarantine",
                               "fix the cause (disk space, permissions), then run the restore again") from None
        finally:
            self.dirs.close()
        return self.entries

    def _folder(self, rel: str) -> tuple[int, str]:
        """(fd of the folder ``rel`` is staged in, its name there); a symlinked folder is refused."""
        parent, _, name = self._staged_rel(rel).rpartition("/")
        return self._fd_of(parent), name

    def _in_whole(self, rel: str) -> bool:
        """Whether ``rel`` lies in a top folder the store does not have (staged whole)."""
        return bool(self.stage_dir) and rel.partition("/")[0] in self.whole_set

    def _staged_rel(self, rel: str) -> str:
        """Where ``rel`` is written while staging: inside the staging folder if its top folder is new."""
        return f"{self.stage_dir}/{rel}" if self._in_whole(rel) else rel

    def _move_blockers(self) -> None:
        blockers = [a for a in self.plan.actions if a.kind == "move_aside" and a.reason.startswith("a file is where")]
        for action in blockers:
            self._put(action.path, action.reason)

    def _create_dirs(self) -> None:
        self.whole = [rel for rel, _ in self.plan.create_dirs if "/" not in rel]
        self.whole_set = set(self.whole)
        if self.whole:
            self.stage_dir = f"{storefs.STAGE_PREFIX}{secrets.token_hex(4)}"
            os.mkdir(self.stage_dir, 0o700, dir_fd=self.dirs.get(""))
        for rel, mode in self.plan.create_dirs:
            parent_fd, name = self._folder(rel)
            created = storefs.mkdir_at(parent_fd, name, mode or 0o700, sync=False)
            if created and not self._in_whole(rel):
                self.created_dirs.append(rel)   # made in the store itself: removed again if staging fails
            self.dirs.get(self._staged_rel(rel))   # a real folder now (refuses a symlink standing there)

    def _stage(self, actions) -> None:
        """Stage every file (each blob verified and judged; a run of adjacent frames per pack read,
        shared with worker processes for a large restore: ``unpack``); the first failure stops it all."""
        targets: dict[str, list] = {}
        for action in actions:
            folder, _, name = self._staged_rel(action.path).rpartition("/")
            self._fd_of(folder)   # opened here first: a worker writes only into this very folder
            entry = action.entry
            targets.setdefault(entry.hash, []).append((action.path, folder, name, self._in_whole(action.path),
                                                       storefs.safe_mode(entry.mode), entry.mtime_ns))
        job = StageJob.over(self.repo, self.root, self.dirs.fds, not self.allow_damaged, self.delay)
        try:
            SharedStaging(self.repo, self._fd_of, job, self._staged_run).run(targets, len(actions))
        except SnapshotError as exc:
            raise RestoreError(f"snapshot {self.plan.snapshot_id} is damaged: {exc.message}; the store was not "
                               "changed", "pass an earlier --at and run `guardian verify`") from None

    def _fd_of(self, folder: str) -> int:
        """The fd of a staged folder (from ``self.dirs``), looked up once: a restore asks for 100k files
        in a few folders."""
        fd = self.folder_fds.get(folder)
        if fd is None:
            fd = self.folder_fds[folder] = self.dirs.get(folder)
        return fd

    def _staged_run(self, result: RunResult) -> None:
        """Record a staged run (whoever staged it): its files are unstaged on failure, committed after."""
        for path, folder, name in result.staged:
            self.staged[path] = (self._fd_of(folder), name)
        self.refused.extend({"path": path, "reason": why} for path, why in result.refused)
        for path, size, mtime_ns, inode, doc_id in result.known:
            folder, _, name = path.rpartition("/")
            self.known.setdefault(folder, {})[name] = [size, mtime_ns, inode, doc_id, None]
        if self.progress:
            self.progress.advance(len(result))

    def _make_durable(self) -> None:
        """One barrier for every staged byte: syncfs of the store's filesystem, else an fsync per file."""
        if not self.staged:
            return
        if fsutil.sync_filesystem(self.dirs.get("")):
            return
        with ThreadPoolExecutor(max_workers=SYNC_WORKERS) as pool:
            list(pool.map(lambda item: fsutil.fsync_at(*item), self.staged.values()))
        for folder_fd in list(self.dirs.fds.values()):   # every folder written in, and their parents
            os.fsync(folder_fd)

    def _unstage(self) -> None:
        for rel, (folder_fd, temp) in self.staged.items():
            if not self._in_whole(rel):
                with contextlib.suppress(OSError):
                    storefs.unlink_temp_at(folder_fd, temp)
        if self.stage_dir:
            with contextlib.suppress(OSError):
                storefs.remove_stage_dir(self.dirs.get(""), self.stage_dir)
        for rel in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                parent_fd, name = self.dirs.parent_of(rel)
                os.rmdir(name, dir_fd=parent_fd)  # only if still empty: we created it

    def _put(self, rel: str, why: str) -> None:
        entry = self.quarantine.put(self.root, rel, f"{self.reason}: {why}", source="restore", dirs=self.dirs)
        self.entries.append(entry.id)

    def _commit(self) -> None:
        for action in self.plan.actions:
            if action.kind == "move_aside" and not action.reason.startswith("a file is where"):
                self._put(action.path, action.reason)
        self._commit_whole_folders()
        for action in self.plan.actions:
            if action.kind in ("write", "replace") and action.path in self.staged and not self._in_whole(action.path):
                self._commit_one(action)
        for folder_fd in self.touched:
            with contextlib.suppress(OSError):
                os.fsync(folder_fd)

    def _commit_whole_folders(self) -> None:
        """Rename each staged new folder into the store root (one atomic step per folder)."""
        if not self.stage_dir:
            return
        root_fd, stage_fd = self.dirs.get(""), self.dirs.get(self.stage_dir)
        try:
            for name in self.whole:
                if self.delay:
                    time.sleep(self.delay / 2)
                self._rename_whole(name, stage_fd, root_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.fsync(root_fd)
                storefs.remove_stage_dir(root_fd, self.stage_dir)   # what was not renamed in yet
            raise
        os.fsync(root_fd)
        self.dirs.forget(self.stage_dir)
        with contextlib.suppress(OSError):
            os.rmdir(self.stage_dir, dir_fd=root_fd)
            os.fsync(root_fd)

    @staticmethod
    def _rename_whole(name: str, stage_fd: int, root_fd: int) -> None:
        try:
            os.rename(name, name, src_dir_fd=stage_fd, dst_dir_fd=root_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise RestoreError(f"{name} appeared in the store while the restore ran; it was left as it is",
                                   "run the restore again") from None
            raise

    def _commit_one(self, action) -> None:
        if self.delay:
            time.sleep(self.delay / 2)
        folder_fd, temp = self.staged[action.path]
        name = action.path.rsplit("/", 1)[-1]
        if action.is_dir:
            self._put(action.path, action.reason)
        elif _is_small_regular(name, folder_fd):
            entry = self.quarantine.preserve(self.root, action.path, f"{self.reason}: replaced", source="restore",
                                             dirs=self.dirs)
            self.entries.append(entry.id)
        elif storefs.exists_at(name, folder_fd):   # a FIFO, device, symlink or huge file: moved, never read
            self._put(action.path, f"{action.reason}: not a regular file of a real document's size")
        storefs.replace_at(folder_fd, temp, name)
        self.touched.add(folder_fd)
