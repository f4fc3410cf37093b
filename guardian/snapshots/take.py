"""Take a snapshot: stat-walk the store, read only what changed, store new blobs, write the manifest.

A file whose (size, mtime_ns, inode) matches the previous snapshot reuses that snapshot's blob
without being read. When nothing changed at all (``statcache``: every folder as the last snapshot
recorded it) the new manifest takes the previous file list as it is, so a snapshot of an unchanged
store costs a stat walk. A file that changes while being read is re-read (a few tries), else marked
unstable and the previous blob is kept. New blobs go into pack files (one fsync per pack), written
by this process and, for a large capture, by worker processes each with its own packs (``capture``);
the manifest is written after every pack is durable.
A file chromem would refuse (empty, cut, garbage) is marked damaged and the row keeps the previous
good copy, so damage never becomes the newest version a restore or a repair would use.

Continuous capture passes ``changed`` (the paths the watcher saw change): the new snapshot is the
previous one's file list with only those paths looked at and read again, and its delta against the
base list is carried from snapshot to snapshot, so its cost follows the change, not the store's
size. The hourly snapshot stays a full walk and catches any event the watcher lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat as statmod
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from guardian.local.catalog import Catalog
from guardian.errors import CodecError, GuardianError, SnapshotError, StoreError
from guardian.format import layout
from guardian.local import storefs
from guardian.logs import get_logger
from guardian.local.fsutil import TEMP_PREFIX
from guardian.local.lock import store_lock
from guardian.snapshots import statcache
from guardian.snapshots.statcache import SNAPSHOT_FIELDS, StatColumns
from guardian.store.judge import prepare as prepare_judge
from guardian.snapshots.manifest import (FLAG_UNSTABLE, CollectionInfo, Manifest,
                                         ManifestEntry, base_index, body_of, decode_header, decode_manifest_rows,
                                         encode_body, encode_manifest, encode_with_body, sparse_delta)
from guardian.store.scan import no_cyclic_gc
from guardian.snapshots.capture import FLAGS, HASH, PATH, SIZE, Capture, read_stable
from guardian.snapshots.good_copies import BlobJudge, Snapshots, metadata_copies, search_order
from guardian.snapshots.repository import Repository, new_snapshot_id
from guardian.local.paths import StatePaths

RACY_WINDOW_NS = 2_000_000_000   # files modified this close to the scan are re-read next time
REBASE_FRACTION = 0.15           # start a new dictionary when a manifest grows past this share
CONTINUOUS_REBASE_FRACTION = 0.025  # ... of continuous snapshots (one every few seconds: ~40 per base list)
BASE_LIST_MIN_FILES = 500        # smaller file lists are written whole, without a base list
STAT_CACHE = "snapshot-stats"
FILE_TYPE_BITS = 0o170000


@dataclass
class StoreListing:
    # prefix, names, lstats (a StatColumns for a folder listed in C, else stat results)
    folders: list[tuple[str, list[str], "StatColumns | list[os.stat_result]"]] = field(default_factory=list)
    dirs: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    temps: bool = False   # guardian's own temp files or staging folders were seen (and left out)
    _files: dict[str, os.stat_result] | None = None

    @property
    def files(self) -> dict[str, os.stat_result]:
        """Every regular file's store-relative path -> lstat (built on first use)."""
        if self._files is None:
            self._files = {prefix + name: info for prefix, names, stats in self.folders
                           for name, info in zip(names, stats)}
        return self._files


def list_store(root: Path) -> StoreListing:
    """Every regular file under ``root`` (recursively, symlinks not followed) with its lstat, folder by
    folder in directory order. Each folder is opened without following a symlink and listed with
    ``storefs.list_folder_stats`` (getdents + one lstat per entry relative to the folder's fd, in C
    with the GIL released): a folder of plain files costs no Python object per file but its name."""
    listing = StoreListing()
    pending = [("", str(root))]
    while pending:
        pending.extend(_list_folder(listing, *pending.pop()))
    listing.dirs.sort()
    listing.skipped.sort()
    return listing


def _list_folder(listing: StoreListing, prefix: str, folder: str) -> list[tuple[str, str]]:
    """Note one folder's entries in ``listing``; returns its subfolders as (prefix, path) to walk.
    The store root may be a symlink (the user's path); every folder under it is opened without
    following one (a folder swapped for a symlink since its parent was listed is not walked)."""
    try:
        fd = os.open(folder, storefs.DIR_FLAGS if prefix else os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        listing.skipped.append((prefix or ".", f"unreadable folder: {exc.strerror}"))
        return []
    try:
        names, stats = _folder_stats(fd)
    except OSError as exc:
        listing.skipped.append((prefix or ".", f"unreadable folder: {exc.strerror}"))
        return []
    finally:
        os.close(fd)
    joined = "\x00" + "\x00".join(names)
    if isinstance(stats, StatColumns) and stats.plain_files_up_to(MAX_SNAPSHOT_FILE) and \
            "\x00" + TEMP_PREFIX not in joined:   # the common case, checked in C
        listing.folders.append((prefix, names, stats))
        return []
    listing.temps = listing.temps or "\x00" + TEMP_PREFIX in joined
    file_names, file_stats, subfolders = [], [], []
    for name, info in zip(names, stats):
        rel = prefix + name
        if name.startswith(TEMP_PREFIX):
            continue  # guardian's own staged file from an interrupted restore
        if info.st_mode & FILE_TYPE_BITS == statmod.S_IFREG:
            if info.st_size > MAX_SNAPSHOT_FILE:   # a huge or sparse file: never read into memory
                listing.skipped.append((rel, f"larger than {MAX_SNAPSHOT_FILE} bytes: no chromem file is this "
                                             "large (`guardian check` reports it)"))
                continue
            file_names.append(name)
            file_stats.append(info)
        elif statmod.S_ISDIR(info.st_mode):
            listing.dirs.append((rel, statmod.S_IMODE(info.st_mode)))
            subfolders.append((rel + "/", os.path.join(folder, name)))
        elif statmod.S_ISLNK(info.st_mode):
            listing.skipped.append((rel, "symlink (not followed)"))
        else:
            listing.skipped.append((rel, "not a regular file"))
    listing.folders.append((prefix, file_names, file_stats))
    return subfolders


def _folder_stats(fd: int) -> tuple[list[str], "StatColumns | list[os.stat_result]"]:
    """A folder's names and lstats: as columns (storefs.list_folder_stats), or, when that fails (an
    entry removed between the listing and its lstat, a number past 64 bits), entry by entry: an entry
    that is gone by then is simply not part of this snapshot, like a file gone before it is read."""
    try:
        names, numbers = storefs.list_folder_stats(fd, SNAPSHOT_FIELDS)
        return names, StatColumns(numbers)
    except (OSError, OverflowError):
        pass
    names, stats = [], []
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                stats.append(entry.stat(follow_symlinks=False))
            except FileNotFoundError:
                continue
            names.append(entry.name)
    return names, stats


MAX_SNAPSHOT_FILE = 64 << 20   # guardian.format.chromem.MAX_FILE_BYTES: what a real document can hold


@dataclass
class SnapshotResult:
    id: str
    time: datetime
    files: int
    read_files: int
    new_blobs: int
    new_bytes: int
    total_bytes: int
    manifest_bytes: int
    seconds: float
    documents: int
    collections: list[dict]
    unstable: list[str]
    skipped: list[tuple[str, str]]
    damaged: list[tuple[str, str]] = field(default_factory=list)   # (path, why) found damaged this time
    incremental: bool = False
    baseline: "Baseline | None" = field(default=None, repr=False)  # for the next incremental take

    def to_dict(self) -> dict:
        return {"id": self.id, "time": self.time.isoformat().replace("+00:00", "Z"), "files": self.files,
                "read_files": self.read_files, "new_blobs": self.new_blobs, "new_bytes": self.new_bytes,
                "total_bytes": self.total_bytes, "manifest_bytes": self.manifest_bytes,
                "seconds": round(self.seconds, 3), "documents": self.documents, "collections": self.collections,
                "unstable": self.unstable, "skipped": [list(s) for s in self.skipped],
                "damaged": [{"path": p, "reason": r} for p, r in self.damaged], "incremental": self.incremental}


@dataclass
class Baseline:
    """A committed snapshot's header and rows, kept in memory by continuous capture (not re-read),
    with the lookups an incremental take needs (built once, then carried from snapshot to snapshot)."""

    manifest: Manifest
    rows: list[list]
    by_path: dict[str, list] | None = None
    folder_files: dict[str, int] | None = None   # top folder -> files listed under it
    delta: "DeltaState | None" = None             # how ``rows`` differ from the manifest's base list

    def path_index(self) -> dict[str, list]:
        if self.by_path is None:
            self.by_path = {row[0]: row for row in self.rows}
        return self.by_path

    def files_per_folder(self) -> dict[str, int]:
        if self.folder_files is None:
            counts: dict[str, int] = {}
            for row in self.rows:
                folder, slash, _ = row[0].partition("/")
                if slash:
                    counts[folder] = counts.get(folder, 0) + 1
            self.folder_files = counts
        return self.folder_files


@dataclass
class DeltaState:
    """How a file list differs from its base list: rows not in it (or changed), base positions left out."""

    base: str
    explicit: dict[str, list]
    dropped: set[int]

    @classmethod
    def compute(cls, base: str, base_rows: list[list], rows: list[list]) -> "DeltaState":
        index = base_index(base_rows)
        kept = set()
        explicit = {}
        for row in rows:
            i = index.get(row[0])
            if i is not None and (base_rows[i] is row or base_rows[i] == row):
                kept.add(i)
            else:
                explicit[row[0]] = row
        return cls(base, explicit, set(range(len(base_rows))) - kept)

    def updated(self, base_rows: list[list], changes, by_path: dict[str, list]) -> "DeltaState":
        index = base_index(base_rows)
        explicit, dropped = dict(self.explicit), set(self.dropped)
        for rel in changes:
            i = index.get(rel)
            row = by_path.get(rel)
            explicit.pop(rel, None)
            if i is not None:
                dropped.discard(i)
            if row is None:
                if i is not None:
                    dropped.add(i)
            elif i is None or not (base_rows[i] is row or base_rows[i] == row):
                explicit[rel] = row
                if i is not None:
                    dropped.add(i)
        return DeltaState(self.base, explicit, dropped)




def detect_compress(files, configured: bool | None) -> bool:
    if configured is not None:
        return configured
    blob = "\x00".join(files) + "\x00"  # store-relative paths; paths hold no NUL
    return layout.prefer_gzip(blob.count(f"/{layout.METADATA_STEM}{layout.GZ_EXT}\x00"),
                              blob.count(f"/{layout.METADATA_STEM}{layout.GOB_EXT}\x00"),
                              blob.count(layout.GZ_EXT + "\x00"), blob.count(layout.GOB_EXT + "\x00"))


def collection_infos(rows: list[list], compress: bool, contents: dict[str, bytes],
                     previous: Manifest | None, repo: Repository) -> list[CollectionInfo]:
    """Per top-level folder: the collection name (from its metadata file) and document count."""
    ext = layout.extension(compress)
    metadata_name = layout.metadata_file_name(compress)
    known = {c.metadata_hash: c.name for c in (previous.collections if previous else []) if c.metadata_hash}
    documents: dict[str, int] = {}
    metadata: dict[str, ManifestEntry] = {}
    for row in rows:
        folder, slash, name = row[PATH].partition("/")
        if not slash:
            continue
        count = documents.setdefault(folder, 0)
        if "/" in name:
            continue
        if name == metadata_name:
            metadata[folder] = ManifestEntry(*row)
        elif name.endswith(ext):
            documents[folder] = count + 1
    result = []
    for folder in sorted(documents):
        meta = metadata.get(folder)
        name = None
        if meta is not None and meta.hash:
            name = known.get(meta.hash) if meta.hash in known else _collection_name(meta, contents, repo)
        result.append(CollectionInfo(folder, name, documents[folder], meta.hash if meta else None))
    return result


def changed_folder_files(base: Baseline, changes: dict, by_path: dict, old: set[str]) -> dict[str, int]:
    """Files per top folder after ``changes`` (from the baseline's counts: no pass over every row);
    ``old``: the changed paths the baseline held."""
    counts = dict(base.files_per_folder())
    for rel in changes:
        folder, slash, _ = rel.partition("/")
        delta = (rel in by_path) - (rel in old)
        if slash and delta:
            counts[folder] = counts.get(folder, 0) + delta
    return {folder: n for folder, n in counts.items() if n > 0}


def changed_collection_infos(base: Baseline, changes: dict, by_path: dict, folder_files: dict[str, int],
                             old: set[str], compress: bool, contents: dict[str, bytes],
                             repo: Repository) -> list[CollectionInfo]:
    """:func:`collection_infos` for an incremental snapshot: the previous infos updated by ``changes``
    (document counts by added/removed files, names only for metadata files that changed)."""
    ext = layout.extension(compress)
    metadata_name = layout.metadata_file_name(compress)
    previous = {c.dir: c for c in base.manifest.collections}
    documents = {folder: c.documents for folder, c in previous.items()}
    metadata = {folder: c.metadata_hash for folder, c in previous.items()}
    names = {folder: c.name for folder, c in previous.items()}
    known = {c.metadata_hash: c.name for c in base.manifest.collections if c.metadata_hash}
    for rel in changes:
        folder, slash, name = rel.partition("/")
        if not slash or "/" in name:
            continue
        if name == metadata_name:
            row = by_path.get(rel)
            digest = row[HASH] if row is not None else None
            metadata[folder] = digest
            if digest is None:
                names[folder] = None
            elif digest in known:
                names[folder] = known[digest]
            else:
                names[folder] = _collection_name(ManifestEntry(*row), contents, repo)
        elif name.endswith(ext):
            documents[folder] = documents.get(folder, 0) + (rel in by_path) - (rel in old)
    return [CollectionInfo(folder, names.get(folder) if metadata.get(folder) else None, documents.get(folder, 0),
                           metadata.get(folder)) for folder in sorted(folder_files)]


def _collection_name(meta: ManifestEntry, contents: dict[str, bytes], repo: Repository) -> str | None:
    # the decoder (numpy + gob, ~0.25-0.5 s to import here at load 5) loads with the first metadata
    # file a snapshot reads; `snapshots`, `status` and restores without a decode never pay it
    from guardian.format.chromem import decode_collection

    try:
        data = contents.get(meta.path)
        if data is None:
            data = repo.read_blob(meta.hash)
        return decode_collection(data, meta.path).name
    except (CodecError, SnapshotError):
        return None


def take_snapshot(paths: StatePaths, compress: bool | None = None, *, lock_timeout: float = 30.0,
                  clock: Callable[[], datetime] | None = None, progress=None,
                  reader: Callable = read_stable, changed: "set[str] | None" = None,
                  baseline: "Baseline | None" = None, repo: Repository | None = None) -> SnapshotResult:
    """Take one snapshot of ``paths.store`` under the store lock.

    ``changed`` (store-relative paths of files or folders that changed): an incremental snapshot on
    top of the newest one (``baseline`` if it still is the newest, saving a manifest read); without
    it, or when there is no usable previous snapshot, a full walk. ``repo``: a repository object kept
    by the caller (continuous capture), whose blob index is then looked at again, not rebuilt."""
    root = paths.store
    if not root.is_dir():
        raise StoreError(f"the store {root} is not a folder", "pass --store with contextd's vectorstore folder")
    paths.ensure()
    repo = (repo or Repository(paths.snapshots)).ensure()
    prepare_judge()  # the decoder's import, not while holding the lock
    with store_lock(paths.lock_file, timeout=lock_timeout):
        repo.refresh()   # under the lock: packs another take or a prune added or removed since
        if changed is not None:
            base = _baseline_or_latest(repo, baseline)
            if base is not None and base.manifest.packs is not None:
                return _take_incremental(paths, repo, base, changed, compress, clock, reader)
        repo.clean_temp_files()
        try:
            repo.migrate_loose()  # repositories of older versions: blobs into packs, once
        except OSError as exc:
            raise SnapshotError(f"cannot move the old blobs into packs: {exc.strerror or exc}",
                                "free space in guardian's state dir and run `guardian snapshot` again; "
                                "older snapshots are intact") from None
        with no_cyclic_gc():   # 100k rows and stat results, no cycles among them
            return _take_locked(paths, repo, compress, clock, progress, reader)


@dataclass
class _Previous:
    """The newest snapshot: its header and encoded bytes; its rows are decoded only when needed."""
    manifest: Manifest | None = None
    data: bytes = b""
    rows: list[list] | None = None

    def decoded(self, repo: Repository) -> tuple[Manifest | None, list[list]]:
        """The newest snapshot whose file list decodes (falling back to older ones), as header + rows."""
        if self.rows is None:
            self.rows = []
            if self.manifest is not None:
                with contextlib.suppress(SnapshotError):
                    self.manifest, self.rows = decode_manifest_rows(self.data, self.manifest.id, repo.dictionary)
                    return self.manifest, self.rows
            self.manifest, self.rows = _latest_readable(repo, skip=self.manifest.id if self.manifest else None)
        return self.manifest, self.rows


def _newest_header(repo: Repository) -> _Previous:
    """The newest snapshot whose header reads (its bytes kept for the no-change path)."""
    for snapshot_id in reversed(repo.list_ids()):
        with contextlib.suppress(SnapshotError):
            data = repo._manifest_bytes(snapshot_id)
            manifest = decode_header(data, snapshot_id)
            if manifest.id == snapshot_id:
                return _Previous(manifest, data)
    return _Previous()


class _BlobsOnDisk:
    """``in`` looks on disk: an incremental take asks about a few blobs, not worth a sweep."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def __contains__(self, digest) -> bool:
        return bool(digest) and self.repo.has_blob(digest)


def prepare_baseline(repo: Repository) -> "Baseline | None":
    """The newest snapshot as a Baseline with its lookups built (blob index, path index, folder
    counts, difference to its base list), read ahead by continuous capture while nothing is due,
    so that the first capture after start-up or after another snapshot costs what the next ones do
    (at 100k files reading these took seconds, all of it added to the first writes' RPO). No lock:
    :func:`take_snapshot` uses it only if it is still the newest snapshot then."""
    repo.has_blob("0" * 64)   # builds the blob index
    manifest, rows = _latest_readable(repo)
    if manifest is None or manifest.packs is None:
        return None
    base = Baseline(manifest, rows)
    base.path_index()
    base.files_per_folder()
    if manifest.files_dict:
        with contextlib.suppress(SnapshotError):
            base.delta = DeltaState.compute(manifest.files_dict, repo.dictionary(manifest.files_dict), rows)
    return base


def _baseline_or_latest(repo: Repository, baseline: "Baseline | None") -> "Baseline | None":
    ids = repo.list_ids()
    if baseline is not None and ids and ids[-1] == baseline.manifest.id:
        return baseline
    manifest, rows = _latest_readable(repo)
    return None if manifest is None else Baseline(manifest, rows)


def _latest_readable(repo: Repository, skip: str | None = None) -> tuple[Manifest | None, list[list]]:
    """The newest readable snapshot's header and validated file-list rows (None, [] if there is none)."""
    for snapshot_id in reversed(repo.list_ids()):
        if snapshot_id == skip:
            continue
        try:
            return repo.read_manifest_rows(snapshot_id)
        except SnapshotError as exc:   # damaged or hostile: skipped (verify counts it), never fatal
            get_logger("guardian.snapshot").warning("snapshot_skipped", snapshot=snapshot_id, error=exc.message)
    return None, []


def changed_listing(root: Path, changed: set[str], previous: Manifest, previous_rows: list[list]
                    ) -> tuple[dict[str, os.stat_result | None], StoreListing]:
    """What the ``changed`` paths are now: {rel: lstat or None (gone)}, and the folders/skips after.

    A changed folder is walked (a new collection) or, when gone, everything under it goes too."""
    dirs = dict(previous.dirs)
    skipped = dict(previous.skipped)
    changes: dict[str, os.stat_result | None] = {}
    known = None
    for rel in sorted(changed):
        if not rel or rel.startswith("/") or any(part in ("", ".", "..") for part in rel.split("/")):
            continue
        if rel.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
            continue
        skipped.pop(rel, None)
        try:
            info = os.lstat(root / rel)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            skipped[rel] = f"unreadable: {exc.strerror}"
            info = None
        if info is not None and statmod.S_ISDIR(info.st_mode):
            known = known if known is not None else [row[PATH] for row in previous_rows]
            _walk_changed_folder(root, rel, info, changes, dirs, skipped, known)
            continue
        if info is None or not statmod.S_ISREG(info.st_mode):
            if info is not None:
                skipped[rel] = "symlink (not followed)" if statmod.S_ISLNK(info.st_mode) else "not a regular file"
            changes[rel] = None
            if info is None and (rel in dirs or any(d.startswith(rel + "/") for d in dirs)):
                known = known if known is not None else [row[PATH] for row in previous_rows]
                _forget_folder(rel, changes, dirs, skipped, known)
            continue
        changes[rel] = info
        _note_parents(root, rel, dirs)
    listing = StoreListing(dirs=sorted(dirs.items()), skipped=sorted(skipped.items()))
    return changes, listing


def _walk_changed_folder(root, rel, info, changes, dirs, skipped, known) -> None:
    """A folder that changed (appeared, or was replaced): its files as they are now."""
    _forget_folder(rel, changes, dirs, skipped, known)
    listing = StoreListing()
    listing.dirs.append((rel, statmod.S_IMODE(info.st_mode)))
    pending = [(rel + "/", str(root / rel))]
    while pending:
        pending.extend(_list_folder(listing, *pending.pop()))
    for path, found in listing.files.items():
        changes[path] = found
    dirs.update(dict(listing.dirs))
    skipped.update(dict(listing.skipped))
    _note_parents(root, rel + "/x", dirs)


def _forget_folder(rel, changes, dirs, skipped, known) -> None:
    prefix = rel + "/"
    for path in known:
        if path.startswith(prefix):
            changes[path] = None
    for folder in [d for d in dirs if d == rel or d.startswith(prefix)]:
        del dirs[folder]
    for path in [p for p in skipped if p.startswith(prefix)]:
        del skipped[path]


def _note_parents(root: Path, rel: str, dirs: dict[str, int]) -> None:
    parts = rel.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/".join(parts[:depth])
        if folder not in dirs:
            with contextlib.suppress(OSError):
                dirs[folder] = statmod.S_IMODE(os.lstat(root / folder).st_mode)


def _take_incremental(paths, repo: Repository, base: "Baseline", changed: set[str], compress, clock,
                      reader) -> SnapshotResult:
    """An incremental snapshot: the baseline's rows with the ``changed`` paths looked at again."""
    started = time.monotonic()
    moment = (clock or (lambda: datetime.now(timezone.utc)))()
    previous, previous_rows = base.manifest, base.rows
    capture = Capture(repo, paths.store, previous_rows, _BlobsOnDisk(repo), time.time_ns(), reader, None,
                      base.path_index(), racy_window_ns=RACY_WINDOW_NS)
    try:
        changes, listing = changed_listing(paths.store, changed, previous, previous_rows)
        held = base.path_index()
        old = {rel for rel in changes if rel in held}   # before capture_changes updates the rows in place
        before = _RowFacts.of(base, changes)
        base.files_per_folder()
        rows, by_path = capture.capture_changes(changes)
        is_compressed = previous.compress if compress is None else compress
        for rel in capture.keep_lost_metadata(rows, by_path, is_compressed, {rel.partition("/")[0] for rel in changes}):
            changes.setdefault(rel, None)   # a row this snapshot changed: looked at like a changed path
            if before is not None:
                before.changed.add(rel)
        folder_files = changed_folder_files(base, changes, by_path, old)
        manifest = _build_manifest(paths, repo, listing, rows, capture, previous, moment, compress,
                                   (base, changes, by_path, folder_files, old), before)
        manifest.stats["seconds"] = round(time.monotonic() - started, 3)
        manifest.stats["incremental"] = True
        delta = None
        if previous.files_dict and len(rows) >= BASE_LIST_MIN_FILES:
            delta = _delta_for(repo, base, changes, by_path)
        manifest_bytes, delta = _commit_incremental(repo, manifest, rows, previous, capture, delta, changes, by_path)
    except GuardianError:
        _discard(repo, capture)
        raise
    except OSError as exc:
        _discard(repo, capture)
        raise SnapshotError(f"snapshot failed, nothing was kept from it: {exc.strerror or exc}",
                            "free space in guardian's state dir (or fix the error); older snapshots are intact"
                            ) from None
    if any(c.metadata_hash not in {p.metadata_hash for p in previous.collections} for c in manifest.collections):
        with contextlib.suppress(OSError):
            Catalog(paths.catalog_file).add([c.name for c in manifest.collections if c.name], "snapshot")
    result = _result(manifest, capture.new_blobs, capture.new_bytes, capture.read_files, manifest_bytes,
                     time.monotonic() - started, capture.damaged)
    result.incremental = True
    result.baseline = Baseline(manifest, rows, by_path, folder_files, delta)
    return result


def _commit_incremental(repo: Repository, manifest: Manifest, rows, previous: Manifest, capture: Capture,
                        delta, changes, by_path):
    """Write an incremental manifest: against the base list from the known difference (or a new base
    list), listing the previous packs plus those of the changed files (a superset is safe: it only
    keeps a pack longer)."""
    manifest.files_dict = None
    data = None
    if delta is not None:
        data = _encode_sparse(repo, manifest, delta)
    if data is None and len(rows) >= BASE_LIST_MIN_FILES:
        # a copy: the next capture updates ``rows`` in place, a base list must never change
        digest, written = repo.store_dictionary(json.dumps(rows, separators=(",", ":")).encode(), list(rows))
        if written:
            capture.note_written(written)
            manifest.stats["new_bytes"] = capture.new_bytes
        manifest.files_dict = digest
        delta = DeltaState(digest, {}, set())  # the rows are the new base list
    elif data is None:
        delta = None
    repo.sync()
    digests = {by_path[rel][HASH] for rel in changes if rel in by_path and by_path[rel][HASH]}
    if manifest.files_dict:
        digests.add(manifest.files_dict)
    manifest.packs = sorted(set(previous.packs or []) | repo.packs_for(digests) | set(repo.new_packs()))
    if data is None:
        body = encode_body(rows, rows) if manifest.files_dict else encode_body(rows)
        data = encode_with_body(manifest, body)
    else:
        data = encode_with_body(manifest, body_of(data, manifest.id))
    return repo.write_manifest_bytes(manifest.id, data), delta


def _delta_for(repo: Repository, base: Baseline, changes, by_path) -> DeltaState | None:
    """The new rows' difference to the previous manifest's base list (None: not worth it / not there)."""
    digest = base.manifest.files_dict
    try:
        base_rows = repo.dictionary(digest)
    except SnapshotError:
        return None
    state = base.delta if base.delta is not None and base.delta.base == digest else None
    if state is None:
        state = DeltaState.compute(digest, base_rows, base.rows)
    return state.updated(base_rows, changes, by_path)


def _encode_sparse(repo: Repository, manifest: Manifest, delta: DeltaState) -> bytes | None:
    """An incremental manifest against its base list from the known difference, if it stays small."""
    if not repo.has_blob(delta.base):
        return None
    base_rows = repo.dictionary(delta.base)
    base_paths = _base_paths(base_rows)
    manifest.files_dict = delta.base
    data = encode_manifest(manifest, ops=sparse_delta(base_rows, base_paths, delta.explicit, delta.dropped))
    if len(data) <= CONTINUOUS_REBASE_FRACTION * repo.blob_size(delta.base):
        return data
    manifest.files_dict = None
    return None


_BASE_PATHS: dict[int, tuple[list, list[str]]] = {}


def _base_paths(base_rows: list[list]) -> list[str]:
    cached = _BASE_PATHS.get(id(base_rows))
    if cached is None or cached[0] is not base_rows:
        _BASE_PATHS.clear()
        cached = _BASE_PATHS[id(base_rows)] = (base_rows, [row[0] for row in base_rows])
    return cached[1]


def _take_locked(paths, repo, compress, clock, progress, reader) -> SnapshotResult:
    started = time.monotonic()
    moment = (clock or (lambda: datetime.now(timezone.utc)))()
    started_ns = time.time_ns()
    newest = _newest_header(repo)
    listing = list_store(paths.store)   # leaves guardian's own temp files and staging folders out
    if listing.temps:   # a killed restore's staged files (guardian's own): removed, as the walk saw them
        storefs.clean_guardian_temps(paths.store)
    unchanged = _commit_unchanged(paths, repo, newest, listing, compress, moment, started)
    if unchanged is not None:
        return unchanged
    previous, previous_rows = newest.decoded(repo)
    capture = Capture(repo, paths.store, previous_rows, repo.present(), started_ns, reader, progress,
                      racy_window_ns=RACY_WINDOW_NS)
    if progress:
        progress.start(len(listing.files))
    try:
        rows = capture.capture_all(listing.files)
        is_compressed = detect_compress(listing.files or [row[PATH] for row in rows], compress)
        capture.keep_lost_metadata(rows, None, is_compressed, {d for d, _ in listing.dirs if "/" not in d},
                                   older=lambda folders: _older_metadata(repo, folders, is_compressed))
        manifest = _build_manifest(paths, repo, listing, rows, capture, previous, moment, compress,
                                   is_compressed=is_compressed)
        manifest.stats["seconds"] = round(time.monotonic() - started, 3)
        manifest_bytes, data = _commit(repo, manifest, rows, previous, capture)
    except GuardianError:
        _discard(repo, capture)
        raise
    except OSError as exc:
        _discard(repo, capture)
        raise SnapshotError(f"snapshot failed, nothing was kept from it: {exc.strerror or exc}"
                            f"{' (' + exc.filename + ')' if getattr(exc, 'filename', None) else ''}",
                            "free space in guardian's state dir (or fix the error) and run `guardian snapshot` again; "
                            "older snapshots are intact") from None
    finally:
        if progress:
            progress.close()
    _save_stat_cache(paths, listing, rows, started_ns, data)
    names = [c.name for c in manifest.collections if c.name]
    with contextlib.suppress(OSError):
        Catalog(paths.catalog_file).add(names, "snapshot")
    return _result(manifest, capture.new_blobs, capture.new_bytes, capture.read_files, manifest_bytes,
                   time.monotonic() - started, capture.damaged)


def _older_metadata(repo: Repository, folders: set[str], compress: bool) -> dict:
    """The newest good metadata copy any snapshot's header names for each of ``folders`` (a full take
    whose previous snapshot has none: taken before guardian kept them, or a damaged one)."""
    return metadata_copies(BlobJudge(repo), folders, compress, search_order(repo.list_ids(), None), Snapshots(repo))


def _commit_unchanged(paths, repo, newest: _Previous, listing, compress, moment, started) -> SnapshotResult | None:
    """If the store is exactly as the newest snapshot recorded it, commit a snapshot that takes that
    snapshot's file list as it is (no rows decoded, nothing read); None when that does not apply."""
    previous = newest.manifest
    if previous is None or previous.packs is None:
        return None
    if compress is not None and compress != previous.compress:
        return None
    cache = statcache.load(paths.cache / STAT_CACHE)
    if cache is None or not cache.unchanged(listing):
        return None
    body = body_of(newest.data, previous.id)
    if hashlib.sha256(body).hexdigest() != cache.body_sha or not set(previous.packs) <= set(repo.pack_ids()):
        return None
    manifest = Manifest(id=new_snapshot_id(moment), time=moment.astimezone(timezone.utc), store=str(paths.store),
                        compress=previous.compress, collections=previous.collections, dirs=listing.dirs,
                        skipped=list(listing.skipped), files_dict=previous.files_dict, packs=previous.packs,
                        extra=dict(previous.extra))
    stats = previous.stats
    manifest.stats = {"files": stats.get("files", 0), "read_files": 0, "new_blobs": 0, "new_bytes": 0,
                      "total_bytes": stats.get("total_bytes", 0), "unstable": [],
                      "seconds": round(time.monotonic() - started, 3)}
    try:
        manifest_bytes = repo.write_manifest_bytes(manifest.id, encode_with_body(manifest, body))
    except OSError as exc:
        raise SnapshotError(f"snapshot failed, nothing was kept from it: {exc.strerror or exc}",
                            "free space in guardian's state dir and run `guardian snapshot` again; "
                            "older snapshots are intact") from None
    return _result(manifest, 0, 0, 0, manifest_bytes, time.monotonic() - started)


def _save_stat_cache(paths, listing, rows, started_ns: int, data: bytes) -> None:
    """Record what this snapshot saw, for the next one (a cache: failing to write it costs only time)."""
    with contextlib.suppress(OSError):
        body_sha = hashlib.sha256(body_of(data)).hexdigest()
        cache = statcache.build(listing, {row[PATH]: row for row in rows}, started_ns, RACY_WINDOW_NS, body_sha)
        statcache.save(paths.cache / STAT_CACHE, cache)


def _build_manifest(paths, repo, listing, rows, capture, previous, moment, compress, incremental=None,
                    before: "_RowFacts | None" = None, is_compressed: bool | None = None) -> Manifest:
    """The new snapshot's header; its file list stays as ``rows`` (encoded by :func:`_commit`).
    ``before`` (incremental): the changed paths' sizes and flags in the previous snapshot, so the
    totals are the previous ones adjusted, without a pass over every row."""
    if is_compressed is None and incremental is not None and compress is None:
        is_compressed = previous.compress  # the store's format does not change with a few writes
    elif is_compressed is None:
        is_compressed = detect_compress(listing.files or [row[PATH] for row in rows], compress)
    collections = None
    if incremental is not None and is_compressed == previous.compress:
        collections = changed_collection_infos(*incremental, is_compressed, capture.contents, repo)
    if collections is None:
        collections = collection_infos(rows, is_compressed, capture.contents, previous, repo)
    manifest = Manifest(id=new_snapshot_id(moment), time=moment.astimezone(timezone.utc), store=str(paths.store),
                        compress=is_compressed, collections=collections, dirs=listing.dirs,
                        skipped=sorted(listing.skipped + capture.unreadable), files=None)
    totals = before.after(incremental[2]) if before is not None else None
    if totals is None:
        totals = (sum(row[SIZE] for row in rows), [row[PATH] for row in rows if row[FLAGS] & FLAG_UNSTABLE])
    manifest.stats = {"files": len(rows), "read_files": capture.read_files,
                      "new_blobs": capture.new_blobs, "new_bytes": capture.new_bytes,
                      "total_bytes": totals[0], "unstable": totals[1],
                      "damaged": sorted(capture.damaged)}
    return manifest


@dataclass
class _RowFacts:
    """The previous snapshot's totals and what the changed paths held in it (taken before the rows
    are updated in place), to derive the new totals from the changes alone."""

    total_bytes: int
    unstable: list[str]
    changed: set[str]
    sizes: dict[str, int]   # changed path -> its size in the previous snapshot (if it was there)

    @classmethod
    def of(cls, base: Baseline, changes) -> "_RowFacts | None":
        stats = base.manifest.stats or {}
        total, unstable = stats.get("total_bytes"), stats.get("unstable")
        if not isinstance(total, int) or not isinstance(unstable, list):
            return None
        held = base.path_index()
        return cls(total, unstable, set(changes), {rel: held[rel][SIZE] for rel in changes if rel in held})

    def after(self, by_path: dict) -> tuple[int, list[str]]:
        total = self.total_bytes - sum(self.sizes.values())
        unstable = {rel for rel in self.unstable if rel not in self.changed}
        for rel in self.changed:
            row = by_path.get(rel)
            if row is not None:
                total += row[SIZE]
                if row[FLAGS] & FLAG_UNSTABLE:
                    unstable.add(rel)
        return total, sorted(unstable)


def _commit(repo: Repository, manifest: Manifest, rows: list[list], previous: Manifest | None,
            capture: Capture) -> tuple[int, bytes]:
    """Write the manifest (rows sorted by path) after every pack it needs is durable."""
    manifest.files_dict = None
    body = None
    if len(rows) >= BASE_LIST_MIN_FILES:  # small stores: a base list would not pay for itself
        body = _body_against_previous_base(repo, manifest, rows, previous)
        if body is None:
            base, written = repo.store_dictionary(json.dumps(rows, separators=(",", ":")).encode(), rows)
            if written:
                capture.note_written(written)
                manifest.stats["new_bytes"] = capture.new_bytes
            manifest.files_dict = base
            body = encode_body(rows, rows)
    if body is None:
        body = encode_body(rows)
    repo.sync()
    digests = {row[HASH] for row in rows if row[HASH]}
    if manifest.files_dict:
        digests.add(manifest.files_dict)
    manifest.packs = sorted(repo.packs_for(digests))
    data = encode_with_body(manifest, body)
    return repo.write_manifest_bytes(manifest.id, data), data


def _body_against_previous_base(repo: Repository, manifest: Manifest, rows: list[list],
                                previous: Manifest | None) -> bytes | None:
    """The file list as a delta against the previous snapshot's base list, if that stays small."""
    if previous is None or not previous.files_dict or not repo.has_blob(previous.files_dict):
        return None
    with contextlib.suppress(SnapshotError):
        body = encode_body(rows, repo.dictionary(previous.files_dict))
        if len(body) <= REBASE_FRACTION * repo.blob_size(previous.files_dict):
            manifest.files_dict = previous.files_dict
            return body
    return None


def _discard(repo: Repository, capture: Capture) -> None:
    """Remove the packs this failed snapshot wrote (guardian's own files, referenced by nothing)."""
    with contextlib.suppress(OSError):
        repo.abort_writes()
    for pack_id in repo.new_packs():
        with contextlib.suppress(OSError):
            repo.delete_pack(pack_id)
    with contextlib.suppress(OSError):
        repo.clean_temp_files()
        repo.sync()


def _result(manifest: Manifest, new_blobs: int, new_bytes: int, read_files: int, manifest_bytes: int,
            seconds: float, damaged=()) -> SnapshotResult:
    stats = manifest.stats
    return SnapshotResult(
        id=manifest.id, time=manifest.time, files=stats["files"], read_files=read_files,
        new_blobs=new_blobs, new_bytes=new_bytes + manifest_bytes,
        total_bytes=stats["total_bytes"], manifest_bytes=manifest_bytes, seconds=seconds,
        documents=manifest.documents, collections=[c.to_dict() for c in manifest.collections],
        unstable=stats["unstable"], skipped=manifest.skipped, damaged=sorted(damaged))
