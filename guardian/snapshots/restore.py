"""Execute a restore: choose the snapshot, list the store, plan (pure), stage, then commit.

Staging writes every file to a temp name next to its destination (guardian's ``TEMP_PREFIX``; never
ending in ``.gob``/``.gob.gz``, so chromem ignores it) and verifies each blob against its hash. If any
blob is damaged the staged files are removed and the store is left as it was. Committing renames
each staged file into place; whatever it replaces or moves aside goes to quarantine first, so a
restore can be undone. Every path stays either old or new: never torn, never half-written.
"""

from __future__ import annotations

import contextlib
import os
import stat as statmod
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from guardian.errors import RestoreError, SnapshotError
from guardian.local.fsutil import TEMP_PREFIX, fsync_dir, sha256_file, temp_path_for, write_all
from guardian.local.lock import store_lock
from guardian.local.quarantine import Quarantine
from guardian.snapshots.manifest import Manifest
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore_plan import CurrentFile, RestorePlan, plan_restore, scope_for_collection
from guardian.snapshots.take import test_slow_io_delay
from guardian.snapshots.timespec import pick_snapshot
from guardian.local.paths import StatePaths


STAGE_WORKERS = 8  # fsync-bound: more files in flight than cores


def id_time(snapshot_id: str) -> datetime:
    return datetime.strptime(snapshot_id[:23], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)


def choose_snapshot(repo: Repository, at: datetime | None) -> str:
    """The id of the newest snapshot taken at or before ``at``; RestoreError if there is none."""
    ids = repo.list_ids()
    if not ids:
        raise RestoreError("there are no snapshots of this store yet", "take one with `guardian snapshot`")
    chosen = pick_snapshot([(i, id_time(i)) for i in ids], at)
    if chosen is None:
        first = id_time(ids[0]).astimezone().isoformat(timespec="seconds")
        raise RestoreError(f"no snapshot was taken at or before {at.astimezone().isoformat(timespec='seconds')}; "
                           f"the first one is from {first}",
                           "pass a later --at (see `guardian snapshots`)")
    return chosen


def read_snapshot(repo: Repository, snapshot_id: str) -> Manifest:
    try:
        return repo.read_manifest(snapshot_id)
    except SnapshotError as exc:
        raise RestoreError(f"snapshot {snapshot_id} is damaged: {exc.message}",
                           "pass an earlier --at (see `guardian snapshots`) and run `guardian verify`") from None


@dataclass
class StoreState:
    current: dict[str, CurrentFile] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)   # guardian's own staged temp files


def _sha256_file(path: str) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def read_store_state(root: Path, scope: str | None) -> StoreState:
    """Everything in the store (or in one folder of it) now, with content hashes (files hashed on a
    few threads: reads and sha256 release the GIL)."""
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
    with ThreadPoolExecutor(max_workers=STAGE_WORKERS) as pool:
        for (rel, size, _), digest in zip(regular, pool.map(_sha256_file, [path for _, _, path in regular])):
            state.current[rel] = CurrentFile(rel, size, digest)
    return state


def _note_entry(state: StoreState, rel: str, entry: os.DirEntry, pending: list, regular: list) -> None:
    if entry.name.startswith(TEMP_PREFIX):
        state.leftovers.append(rel)
        return
    info = entry.stat(follow_symlinks=False)
    if statmod.S_ISDIR(info.st_mode):
        state.current[rel] = CurrentFile(rel, 0, None, is_dir=True)
        pending.append((rel + "/", entry.path))
    elif statmod.S_ISREG(info.st_mode):
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
    loadable: bool | None = None
    load_error: str = ""

    def to_dict(self) -> dict:
        return {"snapshot": self.snapshot_id,
                "snapshot_time": self.snapshot_time.isoformat().replace("+00:00", "Z"),
                "collection": self.collection, "scope": self.scope, "dry_run": self.dry_run,
                "counts": self.plan.counts(), "quarantine_entries": self.quarantined,
                "loadable": self.loadable, "load_error": self.load_error,
                "actions": self.plan.to_dict()["actions"]}


def resolve_scope(manifest: Manifest, collection: str | None) -> str | None:
    if collection is None:
        return None
    from guardian.format.chromem import collection_dir_name

    scope = scope_for_collection(collection, manifest.collections, collection_dir_name)
    if scope is None:
        names = ", ".join(sorted(c.name for c in manifest.collections if c.name)) or "none"
        raise RestoreError(f"snapshot {manifest.id} has no collection {collection!r} (it has: {names})",
                           "check the name, or pick another --at")
    return scope


def restore_store(paths: StatePaths, at: datetime | None, collection: str | None = None, *,
                  dry_run: bool = False, confirm: Callable[[RestorePlan], bool] | None = None,
                  lock_timeout: float = 30.0, progress=None, check_load: bool = True) -> RestoreResult:
    """Restore the store (or one collection) to the newest snapshot at or before ``at``."""
    repo = Repository(paths.snapshots)
    root = paths.store
    if not root.is_dir():
        raise RestoreError(f"the store {root} is not a folder", "create the folder or pass the right --store")
    with store_lock(paths.lock_file, timeout=lock_timeout):
        snapshot_id = choose_snapshot(repo, at)
        manifest = read_snapshot(repo, snapshot_id)
        scope = resolve_scope(manifest, collection)
        state = read_store_state(root, scope)
        plan = plan_restore(snapshot_id, manifest.files or [], manifest.dirs, state.current, scope)
        result = RestoreResult(snapshot_id, manifest.time, scope, collection, plan, dry_run)
        if dry_run:
            return result
        if plan.disturbs_store and confirm is not None and not confirm(plan):
            raise RestoreError("restore cancelled; the store was not changed", "pass --force to skip the question")
        _remove_leftovers(root, state.leftovers)
        result.quarantined = Executor(root, repo, Quarantine(paths), plan, progress).run()
    if check_load:
        result.loadable, result.load_error = check_loadable(root, manifest.compress)
    return result


def _remove_leftovers(root: Path, leftovers: list[str]) -> None:
    """Remove staged temp files of an interrupted restore (guardian's own, never user data)."""
    for rel in leftovers:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(root / rel)


def check_loadable(root: Path, compress: bool | None) -> tuple[bool | None, str]:
    try:
        from guardian.store.scan import scan_store
    except ImportError as exc:
        return None, f"store check not available: {exc}"
    scan = scan_store(root, compress)
    return bool(scan.loadable), scan.error or ""


class Executor:
    """Carries out a plan: move aside blockers, stage (verified), then commit by renames."""

    def __init__(self, root: Path, repo: Repository, quarantine: Quarantine, plan: RestorePlan, progress) -> None:
        self.root, self.repo, self.quarantine, self.plan, self.progress = root, repo, quarantine, plan, progress
        self.reason = f"restore of snapshot {plan.snapshot_id}"
        self.staged: dict[str, Path] = {}
        self.created_dirs: list[Path] = []
        self.entries: list[str] = []
        self.touched: set[Path] = set()
        self.checked_dirs: set[Path] = set()   # folders seen not to be symlinks
        self.delay = test_slow_io_delay()

    def run(self) -> list[str]:
        to_write = [a for a in self.plan.actions if a.kind in ("write", "replace")]
        if self.progress:
            self.progress.start(len(to_write))
        try:
            self._move_blockers()
            self._create_dirs()
            self._stage(to_write)
        except BaseException:
            self._unstage()
            raise
        finally:
            if self.progress:
                self.progress.close()
        self._commit()
        return self.entries

    def _safe_dest(self, rel: str) -> Path:
        """``root/rel``, refusing a symlink among its folders (each folder is looked at once per run)."""
        probe = self.root
        for part in rel.split("/")[:-1]:
            probe = probe / part
            if probe in self.checked_dirs:
                continue
            if probe.is_symlink():
                raise RestoreError(f"refusing to write {rel} through the symlink {probe}",
                                   "replace the symlink by a folder, or restore without it")
            self.checked_dirs.add(probe)
        return self.root / rel

    def _move_blockers(self) -> None:
        blockers = [a for a in self.plan.actions if a.kind == "move_aside" and a.reason.startswith("a file is where")]
        for action in blockers:
            self._put(action.path, action.reason)

    def _create_dirs(self) -> None:
        for rel, mode in self.plan.create_dirs:
            path = self._safe_dest(rel + "/x").parent
            if os.path.isdir(path) and not path.is_symlink():
                continue
            os.mkdir(path, 0o700)
            os.chmod(path, mode or 0o700)
            self.created_dirs.append(path)
            fsync_dir(path.parent)

    def _stage(self, actions) -> None:
        """Stage every file (blobs verified) on a few threads; the first failure stops it all."""
        for action in actions:
            self.staged[action.path] = temp_path_for(self._safe_dest(action.path))
        with ThreadPoolExecutor(max_workers=STAGE_WORKERS) as pool:
            for _ in pool.map(self._stage_one, actions):
                if self.progress:
                    self.progress.advance(1)

    def _stage_one(self, action) -> None:
        entry = action.entry
        try:
            data = self.repo.read_blob(entry.hash)
        except SnapshotError as exc:
            raise RestoreError(f"snapshot {self.plan.snapshot_id} is damaged: {exc.message} (needed for "
                               f"{action.path}); the store was not changed",
                               "pass an earlier --at and run `guardian verify`") from None
        self._write_staged(self.staged[action.path], data, entry.mode, entry.mtime_ns)

    def _write_staged(self, staged: Path, data: bytes, mode: int, mtime_ns: int) -> None:
        if self.delay:
            time.sleep(self.delay)
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, data)
            os.fchmod(fd, mode or 0o600)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _unstage(self) -> None:
        for staged in self.staged.values():
            with contextlib.suppress(OSError):
                os.unlink(staged)
        for folder in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only if still empty: we created it

    def _put(self, rel: str, why: str) -> None:
        entry = self.quarantine.put(self.root, rel, f"{self.reason}: {why}", source="restore")
        self.entries.append(entry.id)
        self.touched.add((self.root / rel).parent)

    def _commit(self) -> None:
        for action in self.plan.actions:
            if action.kind == "move_aside" and not action.reason.startswith("a file is where"):
                self._put(action.path, action.reason)
        for action in self.plan.actions:
            if action.kind in ("write", "replace"):
                self._commit_one(action)
        for folder in sorted(self.touched):
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(folder)

    def _commit_one(self, action) -> None:
        if self.delay:
            time.sleep(self.delay / 2)
        dest = self.root / action.path
        if action.is_dir:
            self._put(action.path, action.reason)
        elif os.path.lexists(dest):
            entry = self.quarantine.preserve(self.root, action.path, f"{self.reason}: replaced", source="restore")
            self.entries.append(entry.id)
        os.replace(self.staged[action.path], dest)
        self.touched.add(dest.parent)
