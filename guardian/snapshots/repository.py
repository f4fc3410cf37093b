"""The on-disk snapshot repository (in guardian's state dir, never in the store).

Layout::

    snapshots/blobs/<hh>/<sha256>.zst     one per distinct file content (zstd)
    snapshots/manifests/<id>.manifest     one per snapshot; written last (the commit point)

Writers hold the store lock; readers need none: every file appears by an atomic rename, and
leftover temp files (``fsutil.TEMP_PREFIX``) are ignored by readers and removed by the next writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import operator
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import zstandard

from guardian.errors import SnapshotError
from guardian.local.fsutil import TEMP_PREFIX, atomic_write, ensure_dir, fsync_dir
from guardian.snapshots.manifest import (HASH_PATTERN, ID_PATTERN, Manifest, decode_manifest, decode_manifest_rows,
                                         encode_manifest, parse_rows)

BLOB_SUFFIX = ".zst"
MANIFEST_SUFFIX = ".manifest"
BLOB_LEVEL = 3
SYNC_WORKERS = 8
MAX_BLOB = 4 << 30
BLOB_NAME_LENGTH = 64 + len(BLOB_SUFFIX)
DIGEST_OF_NAME = operator.itemgetter(slice(0, 64))


_THREAD_CODECS = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    """This thread's zstd compressor (one per thread: a compressor is not thread-safe)."""
    if not hasattr(_THREAD_CODECS, "compressor"):
        _THREAD_CODECS.compressor = zstandard.ZstdCompressor(level=BLOB_LEVEL)
    return _THREAD_CODECS.compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    if not hasattr(_THREAD_CODECS, "decompressor"):
        _THREAD_CODECS.decompressor = zstandard.ZstdDecompressor()
    return _THREAD_CODECS.decompressor


def _digests_named(names: list[str]):
    """The digest part of every ``<digest>.zst`` name (C-speed when every name has that shape)."""
    if set(map(len, names)) == {BLOB_NAME_LENGTH} and \
            ("\x00".join(names) + "\x00").count(BLOB_SUFFIX + "\x00") == len(names):
        return map(DIGEST_OF_NAME, names)
    return (name[:-len(BLOB_SUFFIX)] for name in names if name.endswith(BLOB_SUFFIX))


def new_snapshot_id(moment: datetime) -> str:
    stamp = moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}-{secrets.token_hex(2)}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Dictionaries(dict):
    """Parsed base lists, shared by every Repository of the process (continuous capture makes a new
    one per snapshot; parsing a 100k-row base list costs ~0.3 s). Only the newest few are kept."""

    KEEP = 2

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        while len(self) > self.KEEP:
            del self[next(iter(self))]


_SHARED_DICTIONARIES = _Dictionaries()


class Repository:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "manifests"
        self._known_dirs: set[Path] = set()
        self._dirty_dirs: set[Path] = set()
        self._dictionaries = _SHARED_DICTIONARIES  # content-addressed, so safe to share in the process
        self._lock = threading.Lock()
        self._present: set[str] = set()   # blobs known to exist (or being written by put_blob)
        self._swept = False               # True once _present holds every blob on disk

    # ---- set-up and housekeeping (writers, under the store lock) -------------------------
    def ensure(self) -> "Repository":
        ensure_dir(self.blobs)
        ensure_dir(self.manifests)
        return self

    def clean_temp_files(self) -> int:
        """Remove guardian's own leftover temp files (from a killed writer). Writers only."""
        removed = 0
        for folder in [self.manifests, *self._blob_folders()]:
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder):
                    if entry.name.startswith(TEMP_PREFIX):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                            removed += 1
        return removed

    def sweep(self) -> set[str]:
        """Remove leftover temp files (as :meth:`clean_temp_files`) and return every blob's digest,
        in one pass over the repository's folders. Writers only. The digests are not pattern-checked:
        callers only look up validated ones in this set."""
        self._remove_temp_files_in(self.manifests)
        blobs: set[str] = set()
        for folder in self._blob_folders():
            names = self._remove_temp_files_in(folder)
            blobs.update(_digests_named(names))
        with self._lock:
            self._present = set(blobs)
            self._swept = True
        return blobs

    @staticmethod
    def _remove_temp_files_in(folder: Path) -> list[str]:
        """The names in ``folder`` after removing guardian's temp files from it ([] if it is gone)."""
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        if "\x00" + TEMP_PREFIX in "\x00" + "\x00".join(names):
            for name in [n for n in names if n.startswith(TEMP_PREFIX)]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(folder / name)
                names.remove(name)
        return names

    def _blob_folders(self) -> list[Path]:
        try:
            return [Path(e.path) for e in os.scandir(self.blobs) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    # ---- blobs ----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest[:2] / f"{digest}{BLOB_SUFFIX}"

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def put_blob(self, data: bytes, digest: str | None = None) -> int:
        """Store ``data`` (if new); returns the compressed bytes written (0 when already there).

        Safe to call from several threads. The blob file is fsynced before its rename; its folder is
        fsynced by :meth:`sync` (once per folder, before the manifest). After :meth:`sweep`, blobs
        known to exist are not looked up on disk again.
        """
        digest = digest or sha256_hex(data)
        target = self.blob_path(digest)
        if not self._claim(digest, target):
            return 0
        try:
            folder = target.parent
            if folder not in self._known_dirs:
                ensure_dir(folder)
                self._known_dirs.add(folder)
            packed = _compressor().compress(data)
            atomic_write(target, packed, sync_dir=False)
        except BaseException:
            with self._lock:
                self._present.discard(digest)
            raise
        with self._lock:
            self._dirty_dirs.add(folder)
        return len(packed)

    def _claim(self, digest: str, target: Path) -> bool:
        """True if this caller is to write blob ``digest`` (not there, and no other thread writing it)."""
        with self._lock:
            if digest in self._present:
                return False
            if not self._swept and target.is_file():
                self._present.add(digest)
                return False
            self._present.add(digest)
            return True

    def sync(self) -> None:
        """fsync every blob folder written to since the last sync (on a few threads: fsync releases the GIL)."""
        with self._lock:
            folders = sorted(self._dirty_dirs)
            self._dirty_dirs.clear()
        try:
            if len(folders) <= 2:
                for folder in folders:
                    fsync_dir(folder)
            else:
                with ThreadPoolExecutor(max_workers=SYNC_WORKERS) as pool:
                    list(pool.map(fsync_dir, folders))
        except BaseException:
            with self._lock:
                self._dirty_dirs.update(folders)  # still to be synced
            raise

    def read_blob(self, digest: str) -> bytes:
        """The content of a blob, checked against its hash; SnapshotError if missing or damaged."""
        path = self.blob_path(digest)
        try:
            packed = path.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"blob {digest[:12]} is missing from the repository") from None
        except OSError as exc:
            raise SnapshotError(f"blob {digest[:12]} cannot be read: {exc.strerror or exc}") from None
        try:
            data = _decompressor().decompress(packed, max_output_size=MAX_BLOB)
        except zstandard.ZstdError as exc:
            raise SnapshotError(f"blob {digest[:12]} is damaged ({exc})") from None
        if sha256_hex(data) != digest:
            raise SnapshotError(f"blob {digest[:12]} is damaged (content does not match its hash)")
        return data

    def blob_size(self, digest: str) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return 0

    def list_blobs(self) -> list[str]:
        found = []
        for folder in self._blob_folders():
            for entry in os.scandir(folder):
                name = entry.name
                if name.endswith(BLOB_SUFFIX) and HASH_PATTERN.match(name[:-len(BLOB_SUFFIX)]):
                    found.append(name[:-len(BLOB_SUFFIX)])
        return sorted(found)

    def delete_blob(self, digest: str) -> int:
        """Remove one of guardian's own blobs (garbage collection); returns the bytes freed."""
        path = self.blob_path(digest)
        with self._lock:
            self._present.discard(digest)
        try:
            size = path.stat().st_size
            os.unlink(path)
        except FileNotFoundError:
            return 0
        with self._lock:
            self._dirty_dirs.add(path.parent)
        return size

    # ---- manifests ------------------------------------------------------------------------
    def manifest_path(self, snapshot_id: str) -> Path:
        return self.manifests / f"{snapshot_id}{MANIFEST_SUFFIX}"

    def list_ids(self) -> list[str]:
        """Snapshot ids, oldest first (ids sort by time). Temp files are ignored."""
        try:
            names = os.listdir(self.manifests)
        except FileNotFoundError:
            return []
        ids = [n[:-len(MANIFEST_SUFFIX)] for n in names if n.endswith(MANIFEST_SUFFIX)]
        return sorted(i for i in ids if ID_PATTERN.match(i))

    def _manifest_bytes(self, snapshot_id: str) -> bytes:
        try:
            return self.manifest_path(snapshot_id).read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"snapshot {snapshot_id} does not exist",
                                "list them with `guardian snapshots`") from None
        except OSError as exc:
            raise SnapshotError(f"snapshot {snapshot_id} cannot be read: {exc.strerror or exc}") from None

    def manifest_bytes(self, snapshot_id: str) -> bytes:
        """The raw manifest (SnapshotError if missing or unreadable)."""
        return self._manifest_bytes(snapshot_id)

    def read_header(self, snapshot_id: str) -> Manifest:
        manifest = decode_manifest(self._manifest_bytes(snapshot_id), snapshot_id, header_only=True)
        self._check_id(manifest, snapshot_id)
        return manifest

    def read_manifest(self, snapshot_id: str) -> Manifest:
        manifest = decode_manifest(self._manifest_bytes(snapshot_id), snapshot_id, self.dictionary)
        self._check_id(manifest, snapshot_id)
        return manifest

    def read_manifest_rows(self, snapshot_id: str) -> tuple[Manifest, list[list]]:
        """The header (``files`` None) and the validated file list as rows: cheaper than FileEntry objects."""
        manifest, rows = decode_manifest_rows(self._manifest_bytes(snapshot_id), snapshot_id, self.dictionary)
        self._check_id(manifest, snapshot_id)
        return manifest, rows

    @staticmethod
    def _check_id(manifest: Manifest, snapshot_id: str) -> None:
        if manifest.id != snapshot_id:
            raise SnapshotError(f"manifest {snapshot_id} claims to be {manifest.id} (damaged or tampered)")

    def dictionary(self, digest: str) -> list:
        """The parsed base rows stored in blob ``digest`` (cached)."""
        if digest not in self._dictionaries:
            try:
                self._dictionaries[digest] = parse_rows(self.read_blob(digest))
            except ValueError as exc:
                raise SnapshotError(f"base list blob {digest[:12]} is damaged ({exc})") from None
        return self._dictionaries[digest]

    def write_manifest(self, manifest: Manifest, dictionary_hash: str | None = None) -> int:
        """Encode and write the manifest (the commit point: blobs must already be synced)."""
        manifest.files_dict = dictionary_hash
        dictionary = self.dictionary(dictionary_hash) if dictionary_hash else None
        return self.write_manifest_bytes(manifest.id, encode_manifest(manifest, dictionary))

    def write_manifest_bytes(self, snapshot_id: str, data: bytes) -> int:
        ensure_dir(self.manifests)
        atomic_write(self.manifest_path(snapshot_id), data)
        return len(data)

    def store_dictionary(self, raw: bytes, rows: list | None = None) -> tuple[str, int]:
        """Store a raw file list as a blob, to compress this and later manifests against.
        ``rows`` (what ``raw`` encodes, not modified afterwards) saves parsing it back."""
        digest = sha256_hex(raw)
        written = self.put_blob(raw, digest)
        self._dictionaries[digest] = rows if rows is not None else parse_rows(raw)
        return digest, written

    def delete_manifest(self, snapshot_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.manifest_path(snapshot_id))
        fsync_dir(self.manifests)

    def headers(self) -> list[Manifest]:
        """Headers of every readable snapshot, oldest first (damaged ones are skipped)."""
        found = []
        for snapshot_id in self.list_ids():
            with contextlib.suppress(SnapshotError):
                found.append(self.read_header(snapshot_id))
        return found
