"""The files of one point in time, by content hash: a snapshot (its manifest), or the store as it is
now (a stat walk; only files whose stat differs from a snapshot's row are read and hashed).

Either way a :class:`FileSet` maps each store-relative path to the sha256 of its content, names the
collections, and reads a version's bytes: from the repository for a snapshot, from what the walk
already read for the store (a file read again later may hold other bytes than the hash says).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat as statmod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from guardian.errors import GuardianError, SnapshotError
from guardian.format.chromem import Document, decode_collection, decode_document
from guardian.format.layout import EXTENSIONS, MAX_FILE_BYTES, METADATA_STEM
from guardian.local import storefs
from guardian.memories.filelists import FileList
from guardian.memories.points import STORE
from guardian.memories.versions import Version, document_file
from guardian.snapshots.manifest import FLAG_RACY, NO_CONTENT_FLAGS
from guardian.snapshots.repository import Repository

REREAD_FLAGS = FLAG_RACY | NO_CONTENT_FLAGS   # a row whose hash a stat match may not vouch for
NO_CONTENT = "the snapshot holds no content for it (it was changing or damaged when taken)"


@dataclass
class FileSet:
    point: str                      # a snapshot id, or STORE
    time: datetime
    files: dict[str, str]           # store-relative path -> sha256 of its content (every file that has one)
    names: dict[str, str]           # collection folder -> collection name
    repo: Repository | None = None
    held: dict[str, bytes] = field(default_factory=dict)    # sha256 -> content already read (the store's)
    unreadable: list[dict] = field(default_factory=list)    # {"path", "reason"}: document files without content

    def collection(self, dir_name: str) -> str:
        return self.names.get(dir_name) or f"({dir_name})"

    def content(self, digest: str) -> bytes:
        held = self.held.get(digest)
        if held is not None:
            return held
        if self.repo is None:
            raise SnapshotError(f"blob {digest[:12]} was not read from the store")
        return self.repo.read_blob(digest)

    def version(self, path: str, digest: str, documents: dict[str, Document | str]) -> Version | dict:
        """The version at ``path`` (content ``digest``), or an unreadable-file record saying why not.
        ``documents`` caches each blob's decoded document (or why it is unreadable): the same bytes
        in several files or snapshots are decoded once."""
        document = documents.get(digest)
        if document is None:
            try:
                document = decode_document(self.content(digest), path)
            except GuardianError as exc:   # a damaged or missing blob, content chromem cannot read
                document = exc.message
            documents[digest] = document
        if isinstance(document, str):
            return {"point": self.point, "path": path, "sha256": digest, "reason": document}
        folder = document_file(path).dir
        return Version(folder, self.collection(folder), path, digest, document)


def snapshot_fileset(files: FileList, rows) -> FileSet:
    """A snapshot's ``rows`` (all of them, or those that can differ from another snapshot's)."""
    contents, unreadable = {}, []
    for row in rows:
        if row[5]:
            contents[row[0]] = row[5]
        elif document_file(row[0]):
            unreadable.append({"point": files.id, "path": row[0], "sha256": None, "reason": NO_CONTENT})
    names = {info.dir: info.name for info in files.manifest.collections if info.name}
    return FileSet(files.id, files.manifest.time, contents, names, files.lists.repo, unreadable=unreadable)


def store_fileset(store: Path, known: dict[str, list], dirs: set[str] | None = None,
                  now: datetime | None = None) -> FileSet:
    """The store as it is now. A file whose size, mtime and inode equal its row in ``known`` (a
    snapshot's rows by path) has that row's content, as continuous capture itself assumes (a row
    written while the file could still change unseen is flagged racy and not trusted); any other
    file is read and hashed. ``dirs``: only these collection folders."""
    result = FileSet(STORE, now or datetime.now(timezone.utc), {}, {})
    for folder, fd in store_folders(store, dirs):
        _read_folder(result, fd, folder, known)
    return result


def store_folders(store: Path, dirs: set[str] | None = None):
    """(name, fd) of each folder at the top of the store (``dirs``: only these), opened without
    following a symlink; each fd is closed when the next is asked for."""
    root = storefs.open_dir_nofollow(store)
    try:
        folders = [name for name in os.listdir(root) if dirs is None or name in dirs]
    finally:
        os.close(root)
    for folder in sorted(folders):
        try:
            fd = storefs.open_dir_nofollow(store, folder)
        except OSError:   # a file, a symlink, gone: not a collection chromem would load from here
            continue
        try:
            yield folder, fd
        finally:
            os.close(fd)


def read_held(result: FileSet, fd: int, folder: str, name: str) -> str | None:
    """Read one store file into ``result`` (its hash, its bytes held); None when it is gone; an
    unreadable-file record when it cannot be read."""
    rel = f"{folder}/{name}"
    try:
        data = storefs.read_regular(name, limit=MAX_FILE_BYTES, dir_fd=fd)
    except OSError as exc:   # gone meanwhile, swapped for something else, too large
        if not isinstance(exc, FileNotFoundError):
            result.unreadable.append({"point": STORE, "path": rel, "sha256": None,
                                      "reason": f"cannot read it: {exc.strerror or exc}"})
        return None
    digest = hashlib.sha256(data).hexdigest()
    result.files[rel] = digest
    result.held[digest] = data
    return digest


def _read_folder(result: FileSet, fd: int, folder: str, known: dict[str, list]) -> None:
    names, numbers = storefs.list_folder_stats(fd, "smiM")
    for i, name in enumerate(names):
        size, mtime, inode, mode = numbers[4 * i:4 * i + 4]
        if not statmod.S_ISREG(mode) or not name.endswith(EXTENSIONS):
            continue
        rel = f"{folder}/{name}"
        if name.startswith(METADATA_STEM + "."):
            name_collection(result, fd, folder, name)
            continue
        row = known.get(rel)
        if row is not None and row[5] and not row[6] & REREAD_FLAGS and \
                (row[1], row[3], row[4]) == (size, mtime, inode):
            result.files[rel] = row[5]
        else:
            read_held(result, fd, folder, name)


def name_collection(result: FileSet, fd: int, folder: str, name: str) -> None:
    with contextlib.suppress(OSError, GuardianError):   # no metadata file, or one chromem cannot read
        record = decode_collection(storefs.read_regular(name, limit=MAX_FILE_BYTES, dir_fd=fd))
        if record.name:
            result.names[folder] = record.name
