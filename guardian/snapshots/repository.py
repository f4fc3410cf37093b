"""The on-disk snapshot repository (in guardian's state dir, never in the store).

Layout::

    snapshots/packs/<sha256>.pack         distinct file contents (zstd frames) packed together, see packs.py
    snapshots/manifests/<id>.manifest     one per snapshot; written last (the commit point)
    snapshots/blobs/<hh>/<sha256>.zst     older versions' one-file-per-blob layout: still read, and moved
                                          into packs by the next writer (:meth:`Repository.migrate_loose`)

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
from datetime import datetime, timezone
from pathlib import Path

import zstandard

from guardian.errors import SnapshotError
from guardian.format.layout import GZIP_MAGIC
from guardian.local.fsutil import TEMP_PREFIX, atomic_write, ensure_dir, fsync_dir
from guardian.snapshots.packs import PACK_SUFFIX, FinishedPack, PackError, PackWriter, read_index
from guardian.snapshots.manifest import (HASH_PATTERN, ID_PATTERN, Manifest, decode_manifest, decode_manifest_rows,
                                         encode_manifest, parse_rows)

BLOB_SUFFIX = ".zst"
MANIFEST_SUFFIX = ".manifest"
BLOB_LEVEL = 3        # guardian's own lists (base lists): JSON, which shrinks well at this level
# A store file (a gob document: mostly float32s) barely shrinks: measured on 5,000 files of a 100k x 384
# store, per file: level 3 keeps 0.832 of the bytes (compress 34 us, decompress 12 us), level 1 0.847
# (20 us, 8 us), level -1 0.995 (7 us, 2.8 us). A first snapshot compresses every file and a restore
# decompresses every one, each bound by its per-file CPU, so files are framed at the fast level: the
# repository holds ~17% more bytes (it keeps each content once, whatever the number of snapshots).
FILE_LEVEL = -1
# A gzip file (chromem's .gob.gz) does not shrink under zstd (measured 1.004 of its size at level 3 on
# a 100k gz store), so it is framed at a fast negative level: same frame format and size, ~half the CPU.
PRECOMPRESSED_LEVEL = -1
MAX_BLOB = 4 << 30
BLOB_NAME_LENGTH = 64 + len(BLOB_SUFFIX)
DIGEST_OF_NAME = operator.itemgetter(slice(0, 64))


_THREAD_CODECS = threading.local()


def _compressor(data: bytes, level: int) -> zstandard.ZstdCompressor:
    """This thread's zstd compressor for ``data`` at ``level`` (gzip data: always the fast level);
    one per thread and level: a compressor is not thread-safe."""
    if data.startswith(GZIP_MAGIC):
        level = PRECOMPRESSED_LEVEL
    codecs = getattr(_THREAD_CODECS, "compressors", None)
    if codecs is None:
        codecs = _THREAD_CODECS.compressors = {}
    codec = codecs.get(level)
    if codec is None:
        codec = codecs[level] = zstandard.ZstdCompressor(level=level)
    return codec


def _decompressor() -> zstandard.ZstdDecompressor:
    if not hasattr(_THREAD_CODECS, "decompressor"):
        _THREAD_CODECS.decompressor = zstandard.ZstdDecompressor()
    return _THREAD_CODECS.decompressor


def _digests_named(names: list[str]):
    """The digest of every ``<64 hex>.zst`` name; other names are not blobs. C-speed when every name
    has a blob name's length and suffix, as in a folder only guardian writes (the hex is not checked
    then: a regex over 100k names costs ~30 ms more)."""
    if set(map(len, names)) == {BLOB_NAME_LENGTH} and \
            ("\x00".join(names) + "\x00").count(BLOB_SUFFIX + "\x00") == len(names):
        return map(DIGEST_OF_NAME, names)
    return (name[:-len(BLOB_SUFFIX)] for name in names
            if name.endswith(BLOB_SUFFIX) and HASH_PATTERN.match(name[:-len(BLOB_SUFFIX)]))


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
        self.packs = self.root / "packs"
        self.blobs = self.root / "blobs"          # the per-blob layout of older versions (read, then migrated)
        self.manifests = self.root / "manifests"
        self._dictionaries = _SHARED_DICTIONARIES  # content-addressed, so safe to share in the process
        self._lock = threading.Lock()
        self._index: dict[str, tuple[str, int, int]] | None = None   # digest -> (pack, offset, length)
        self._pack_sizes: dict[str, int] = {}
        self.damaged_packs: dict[str, str] = {}    # pack id -> why it was not indexed
        self._loose: set[str] | None = None       # digests of loose (old layout) blobs
        self._claimed: set[str] = set()           # blobs being written by put_blob right now
        self._writers: list[PackWriter] = []
        self._adopted: list[FinishedPack] = []     # packs written for this take by worker processes
        self._thread = threading.local()
        self._dirty = False                       # packs renamed into place since the last sync
        # ... or found on disk by this object: such a pack may not be durable in the folder yet (a take
        # killed after a worker renamed it in, before the folder's fsync, leaves a whole pack no
        # manifest refers to, whose blobs the next take reuses), so the next sync() fsyncs the pack
        # folder before a manifest can refer to it, even when that take writes no pack itself
        self._dirty_dirs: set[Path] = set()

    # ---- set-up and housekeeping (writers, under the store lock) -------------------------
    def ensure(self) -> "Repository":
        ensure_dir(self.packs)
        ensure_dir(self.manifests)
        return self

    def clean_temp_files(self) -> int:
        """Remove guardian's own leftover temp files (from a killed writer). Writers only."""
        removed = 0
        for folder in [self.manifests, self.packs, *self._blob_folders()]:
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder):
                    if entry.name.startswith(TEMP_PREFIX):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                            removed += 1
        return removed

    def sweep(self) -> set[str]:
        """Remove leftover temp files and return every blob's digest. Writers only."""
        self.clean_temp_files()
        return self.present()

    def present(self) -> set[str]:
        """The digest of every stored blob (packed or loose)."""
        return set(self._packed()) | self._loose_digests()

    def _blob_folders(self) -> list[Path]:
        try:
            return [Path(e.path) for e in os.scandir(self.blobs) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    # ---- the blob index (rebuilt from the packs' own indexes) ---------------------------
    def pack_ids(self) -> list[str]:
        """Every pack file's id (temp files ignored)."""
        try:
            names = os.listdir(self.packs)
        except FileNotFoundError:
            return []
        return sorted(n[:-len(PACK_SUFFIX)] for n in names
                      if n.endswith(PACK_SUFFIX) and HASH_PATTERN.match(n[:-len(PACK_SUFFIX)]))

    def pack_path(self, pack_id: str) -> Path:
        return self.packs / f"{pack_id}{PACK_SUFFIX}"

    def _packed(self, refresh: bool = False) -> dict[str, tuple[str, int, int]]:
        """The blob index, built from every pack's own index on first use. ``refresh``: look at the
        pack folder again (another process may have added or removed packs since)."""
        with self._lock:
            if self._index is None:
                self._index = {}
                for pack_id in self.pack_ids():
                    self._index_pack(pack_id)
                self._dirty = self._dirty or bool(self._pack_sizes)   # packs found, not written: see __init__
            elif refresh:
                self._refresh_locked()
            return self._index

    def refresh(self) -> None:
        """Begin a new take with a kept repository object: look at the pack folder again (another
        writer may have added or removed packs; only their indexes are read) and forget the packs
        written before, so :meth:`new_packs` names this take's only."""
        with self._lock:
            if self._index is not None:
                self._refresh_locked()
            for writer in self._writers:
                writer.finished.clear()
            self._adopted.clear()

    def _refresh_locked(self) -> None:
        on_disk = set(self.pack_ids())
        known = set(self._pack_sizes) | set(self.damaged_packs)
        if on_disk == known:
            return
        gone = known - on_disk
        if gone:
            self._index = {d: where for d, where in self._index.items() if where[0] not in gone}
            for pack_id in gone:
                self._pack_sizes.pop(pack_id, None)
                self.damaged_packs.pop(pack_id, None)
        for pack_id in sorted(on_disk - known):
            self._index_pack(pack_id)
        self._dirty = True   # packs found, not written: see __init__

    def _where(self, digest: str) -> tuple[str, int, int] | None:
        """Where blob ``digest`` is packed (the pack folder looked at again on a miss)."""
        where = self._packed().get(digest)
        if where is None:
            where = self._packed(refresh=True).get(digest)
        return where

    def _index_pack(self, pack_id: str) -> None:
        """Add one pack's entries to the index (caller holds the lock); a damaged pack is noted, not used."""
        try:
            entries = read_index(self.pack_path(pack_id))
        except FileNotFoundError:
            return
        except (OSError, PackError) as exc:
            self.damaged_packs[pack_id] = str(exc)
            return
        self._add_entries(pack_id, entries)

    def _add_entries(self, pack_id: str, entries, newest: bool = False) -> None:
        """Index a pack's entries; a blob stored twice (a repack in progress) keeps its first place,
        unless ``newest`` (a pack this process just wrote: the place the old one may be leaving)."""
        index = self._index
        if newest:
            index.update((digest, (pack_id, offset, length)) for digest, offset, length, _ in entries)
        else:
            for digest, offset, length, _ in entries:
                index.setdefault(digest, (pack_id, offset, length))
        self._pack_sizes[pack_id] = len(entries)

    def _loose_digests(self, refresh: bool = False) -> set[str]:
        """Digests of the loose (old layout) blobs, listed on first use. ``refresh``: list the blob
        folders again (another process may have written or collected blobs since)."""
        with self._lock:
            if self._loose is None or refresh:
                self._loose = set()
                for folder in self._blob_folders():
                    with contextlib.suppress(FileNotFoundError):
                        self._loose.update(_digests_named(os.listdir(folder)))
            return self._loose

    def pack_entries(self, pack_id: str) -> list[tuple[str, int, int, int]]:
        """The entries of one pack, from its own index (PackError if the pack is damaged)."""
        return read_index(self.pack_path(pack_id))

    def packs_for(self, digests) -> set[str]:
        """The packs holding these blobs (loose and unknown blobs hold none)."""
        index = self._packed()
        found = set()
        for digest in digests:
            where = index.get(digest)
            if where is not None:
                found.add(where[0])
        return found

    # ---- blobs ----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        """Where a blob of the old per-blob layout lives."""
        return self.blobs / digest[:2] / f"{digest}{BLOB_SUFFIX}"

    def blob_location(self, digest: str) -> tuple[Path, int, int] | None:
        """(file, offset, length) of a blob's compressed bytes, or None if it is not stored."""
        where = self._where(digest)
        if where is not None:
            return self.pack_path(where[0]), where[1], where[2]
        path = self.blob_path(digest)
        if path.is_file():
            return path, 0, path.stat().st_size
        return None

    def has_blob(self, digest: str) -> bool:
        return self._where(digest) is not None or self.blob_path(digest).is_file()

    def put_blob(self, data: bytes, digest: str | None = None, level: int = FILE_LEVEL) -> int:
        """Store ``data`` (if new) in this thread's pack; returns the compressed bytes written (0 when
        already stored). Safe from several threads. Nothing is durable until :meth:`sync`."""
        digest = digest or sha256_hex(data)
        if not self._claim(digest):
            return 0
        frame = _compressor(data, level).compress(data)
        self._writer().add(digest, frame, len(data))
        return len(frame)

    def _claim(self, digest: str) -> bool:
        """True if this caller is to write blob ``digest`` (not stored, and no other thread writing it)."""
        packed = self._packed()
        loose = self._loose_digests()
        with self._lock:
            if digest in packed or digest in loose or digest in self._claimed:
                return False
            self._claimed.add(digest)
            return True

    def _writer(self) -> PackWriter:
        writer = getattr(self._thread, "writer", None)
        if writer is None:
            ensure_dir(self.packs)
            writer = PackWriter(self.packs, f"{TEMP_PREFIX}pack.{secrets.token_hex(6)}", on_finish=self._finished)
            self._thread.writer = writer
            with self._lock:
                self._writers.append(writer)
        return writer

    def _finished(self, pack) -> None:
        """A writer renamed a pack into place: index it (so readers in this process see it)."""
        self._packed()
        with self._lock:
            self._add_entries(pack.pack_id, pack.entries, newest=True)
            self._claimed.difference_update(e[0] for e in pack.entries)
            self._dirty = True

    def new_packs(self) -> list[str]:
        """The packs this repository object wrote (finished ones) or adopted from worker processes."""
        with self._lock:
            return [p.pack_id for w in self._writers for p in w.finished] + [p.pack_id for p in self._adopted]

    def finish_packs(self) -> list[FinishedPack]:
        """A worker process's end of a run: finish its open packs (each fsynced, renamed into place)
        and hand them over (forgotten here), for the taking process to :meth:`adopt`."""
        with self._lock:
            writers = list(self._writers)
        for writer in writers:
            writer.finish()
        done = []
        for writer in writers:
            done.extend(writer.finished)
            writer.finished.clear()
        return done

    def adopt(self, packs: list[FinishedPack]) -> None:
        """Packs a worker process wrote for this take: indexed, synced by :meth:`sync`, and counted
        as this take's own (so a failed take removes them with the rest)."""
        self._packed()
        with self._lock:
            for pack in packs:
                self._add_entries(pack.pack_id, pack.entries, newest=True)
                self._adopted.append(pack)
            self._dirty = self._dirty or bool(packs)

    def sync(self) -> None:
        """Make everything written so far durable: finish the open packs (each fsynced), fsync the
        pack folder (once) and any old-layout folder changed. Call before committing a manifest, with
        no put_blob running."""
        with self._lock:
            writers = list(self._writers)
        for writer in writers:
            writer.finish()
        with self._lock:
            dirty, self._dirty = self._dirty, False
            folders = sorted(self._dirty_dirs)
            self._dirty_dirs.clear()
        try:
            if dirty:
                fsync_dir(self.packs)
            for folder in folders:
                fsync_dir(folder)
        except BaseException:
            with self._lock:
                self._dirty = self._dirty or dirty
                self._dirty_dirs.update(folders)
            raise

    def abort_writes(self) -> None:
        """Drop the packs being written (after a failure); finished ones stay until :meth:`delete_pack`."""
        with self._lock:
            writers = list(self._writers)
        for writer in writers:
            writer.abort()

    def read_blob(self, digest: str) -> bytes:
        """The content of a blob, checked against its hash; SnapshotError if missing or damaged."""
        where = self._where(digest)
        if where is not None:
            frame = self._read_frame(*where)
            if frame is None:  # the pack went away (a prune in another process): look again
                where = self._packed(refresh=True).get(digest)
                frame = self._read_frame(*where) if where else None
            if frame is None:
                raise SnapshotError(f"blob {digest[:12]} is missing from the repository (its pack is gone)")
            return self.unpack_frame(digest, frame)
        path = self.blob_path(digest)
        try:
            packed = path.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"blob {digest[:12]} is missing from the repository") from None
        except OSError as exc:
            raise SnapshotError(f"blob {digest[:12]} cannot be read: {exc.strerror or exc}") from None
        return self.unpack_frame(digest, packed)

    def _read_frame(self, pack_id: str, offset: int, length: int) -> bytes | None:
        """One frame of a pack (None if the pack is gone)."""
        try:
            fd = os.open(self.pack_path(pack_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SnapshotError(f"pack {pack_id[:12]} cannot be read: {exc.strerror or exc}") from None
        try:
            return os.pread(fd, length, offset)
        except OSError as exc:
            raise SnapshotError(f"pack {pack_id[:12]} cannot be read: {exc.strerror or exc}") from None
        finally:
            os.close(fd)

    @staticmethod
    def unpack_frame(digest: str, frame) -> bytes:
        """A blob's content from its compressed frame, checked against its hash."""
        try:
            data = _decompressor().decompress(frame, max_output_size=MAX_BLOB)
        except zstandard.ZstdError as exc:
            raise SnapshotError(f"blob {digest[:12]} is damaged ({exc})") from None
        if sha256_hex(data) != digest:
            raise SnapshotError(f"blob {digest[:12]} is damaged (content does not match its hash)")
        return data

    def read_pack(self, pack_id: str) -> bytes:
        """A whole pack file (SnapshotError if it is gone or unreadable)."""
        try:
            return self.pack_path(pack_id).read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"pack {pack_id[:12]} is missing from the repository") from None
        except OSError as exc:
            raise SnapshotError(f"pack {pack_id[:12]} cannot be read: {exc.strerror or exc}") from None

    def repack(self, keep_by_pack: dict[str, set[str]]) -> int:
        """Rewrite packs holding only the blobs in ``keep_by_pack[pack]`` (frames copied as they are,
        each checked first), then remove the old packs. Crash-safe: the old packs are unlinked only
        after the new ones are durable. Returns the bytes freed. Writers only."""
        old_size = 0
        before = set(self.new_packs())
        for pack_id, keep in keep_by_pack.items():
            data = self.read_pack(pack_id)
            old_size += len(data)
            for digest, offset, length, raw_size in self.pack_entries(pack_id):
                if digest in keep:
                    frame = data[offset:offset + length]
                    self.unpack_frame(digest, frame)  # a damaged frame is not carried on
                    self._writer().add(digest, frame, raw_size)
        self.sync()
        new_size = sum(p.size for w in self._writers for p in w.finished if p.pack_id not in before)
        for pack_id in keep_by_pack:
            self.delete_pack(pack_id)
        self.sync()
        return old_size - new_size

    def read_run(self, pack_id: str, run: list[tuple[str, int, int]]) -> list[tuple[str, bytes]]:
        """(digest, content) of a run of frames of one pack, sorted by offset (as :meth:`locate`
        gives them): one read for the whole run, each blob checked against its hash."""
        start, end = run[0][1], run[-1][1] + run[-1][2]
        try:
            fd = os.open(self.pack_path(pack_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                data = memoryview(os.pread(fd, end - start, start))
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise SnapshotError(f"pack {pack_id[:12]} is missing from the repository") from None
        except OSError as exc:
            raise SnapshotError(f"pack {pack_id[:12]} cannot be read: {exc.strerror or exc}") from None
        return [(digest, self.unpack_frame(digest, data[offset - start:offset - start + length]))
                for digest, offset, length in run]

    def iter_blobs(self, digests):
        """(digest, content) for each of ``digests``, each checked: every pack read once, in order."""
        groups, other = self.locate(digests)
        for pack_id in sorted(groups):
            data = self.read_pack(pack_id)
            for digest, offset, length in groups[pack_id]:
                yield digest, self.unpack_frame(digest, memoryview(data)[offset:offset + length])
        for digest in other:
            yield digest, self.read_blob(digest)

    def locate(self, digests) -> tuple[dict[str, list[tuple[str, int, int]]], list[str]]:
        """Blobs grouped by pack as {pack: [(digest, offset, length)]} sorted by offset, and the
        loose (or missing) ones: so a reader reads each pack once, front to back."""
        index = self._packed(refresh=True)
        groups: dict[str, list] = {}
        other = []
        for digest in digests:
            where = index.get(digest)
            if where is None:
                other.append(digest)
            else:
                groups.setdefault(where[0], []).append((digest, where[1], where[2]))
        for members in groups.values():
            members.sort(key=operator.itemgetter(1))
        return groups, other

    def blob_size(self, digest: str) -> int:
        """The compressed size of a blob (0 if not stored)."""
        where = self._packed().get(digest)
        if where is not None:
            return where[2]
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return 0

    def list_blobs(self) -> list[str]:
        """Every stored blob's digest (packed or loose), sorted."""
        return sorted(set(self._packed(refresh=True)) | self._loose_digests(refresh=True))

    def loose_blobs(self) -> list[str]:
        """The digests of blobs stored in the old one-file-per-blob layout."""
        return sorted(self._loose_digests())

    def delete_blob(self, digest: str) -> int:
        """Remove a loose blob of the old layout (garbage collection); returns the bytes freed.
        Packed blobs go with their pack (:meth:`delete_pack`)."""
        path = self.blob_path(digest)
        size = _unlink_sized(path)
        if size is None:
            return 0
        with self._lock:
            if self._loose is not None:
                self._loose.discard(digest)
            self._dirty_dirs.add(path.parent)
        return size

    def delete_pack(self, pack_id: str) -> int:
        """Remove one of guardian's own packs (garbage collection, or a failed snapshot's); returns the
        bytes freed. The folder is fsynced by :meth:`sync`."""
        size = _unlink_sized(self.pack_path(pack_id))
        if size is None:
            return 0
        with self._lock:
            if self._index is not None:
                for digest in [d for d, where in self._index.items() if where[0] == pack_id]:
                    del self._index[digest]
            self._pack_sizes.pop(pack_id, None)
            self._dirty = True
        return size

    def migrate_loose(self) -> int:
        """Move the old layout's loose blobs into packs, once (writers only, under the store lock).

        Crash-safe without a journal: a loose blob is unlinked only after the pack holding the same
        frame is durable, so at every moment each blob is readable from one place or the other. A
        damaged loose blob is left where it is (``verify`` reports it). Returns the blobs moved."""
        loose = sorted(self._loose_digests())
        if not loose:
            return 0
        packed = self._packed()
        moved = []
        for digest in loose:
            if digest in packed:
                moved.append(digest)
                continue
            try:
                frame = self.blob_path(digest).read_bytes()
                data = self.unpack_frame(digest, frame)
            except (OSError, SnapshotError):
                continue
            with self._lock:
                self._claimed.add(digest)
            self._writer().add(digest, frame, len(data))
            moved.append(digest)
        self.sync()
        for digest in moved:
            self.delete_blob(digest)
        self.sync()
        for folder in self._blob_folders():
            with contextlib.suppress(OSError):
                os.rmdir(folder)   # only when empty
        with contextlib.suppress(OSError):
            os.rmdir(self.blobs)
            fsync_dir(self.root)
        return len(moved)

    def data_files_for(self, snapshot_id: str) -> list[str]:
        """The repository files (paths relative to its root) snapshot ``snapshot_id`` needs: its
        manifest, the packs (or old-layout blob files) of every blob it names, its base list's too.

        Replication (guardian/replicas/push.py) copies exactly these files as opaque objects named by
        path, and a restore from a replica writes them back at the same paths, the manifest
        (:meth:`manifest_file_for`) last: so a path, once written, must always hold the same bytes."""
        manifest, rows = self.read_manifest_rows(snapshot_id)
        digests = {row[5] for row in rows if row[5]}
        if manifest.files_dict:
            digests.add(manifest.files_dict)
        groups, other = self.locate(digests)
        files = [f"manifests/{snapshot_id}{MANIFEST_SUFFIX}"]
        files += [f"packs/{pack_id}{PACK_SUFFIX}" for pack_id in sorted(groups)]
        files += [f"blobs/{d[:2]}/{d}{BLOB_SUFFIX}" for d in sorted(other) if self.blob_path(d).is_file()]
        return files

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
        """The header (``files`` None) and the validated file list as rows: cheaper than ManifestEntry objects."""
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
        written = self.put_blob(raw, digest, BLOB_LEVEL)
        self._dictionaries[digest] = rows if rows is not None else parse_rows(raw)
        return digest, written

    def delete_manifest(self, snapshot_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.manifest_path(snapshot_id))
        fsync_dir(self.manifests)

    # ---- files, for replication ----------------------------------------------------------
    def manifest_file_for(self, snapshot_id: str) -> str:
        """The manifest's path relative to :attr:`root` (``/``-separated).

        Replication (guardian/replicas/) copies this file last, as the commit point, and a restore
        from a replica writes it back at this path last."""
        return f"manifests/{snapshot_id}{MANIFEST_SUFFIX}"

    def headers(self) -> list[Manifest]:
        """Headers of every readable snapshot, oldest first (damaged ones are skipped)."""
        found = []
        for snapshot_id in self.list_ids():
            with contextlib.suppress(SnapshotError):
                found.append(self.read_header(snapshot_id))
        return found


def _unlink_sized(path: Path) -> int | None:
    """Remove one of the repository's own files; its size, or None when it was already gone
    (a concurrent prune, or a retry after a kill)."""
    try:
        size = path.stat().st_size
        os.unlink(path)
    except FileNotFoundError:
        return None
    return size
