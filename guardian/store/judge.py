"""Would chromem accept these bytes as this file? One file at a time (snapshots, restore, live repair).

``damage_of(rel, data)`` judges a store-relative path's content as chromem's loader would: a file in
a collection folder ending ``.gob``/``.gob.gz`` must decode as a document (or, for ``00000000``, as
the collection's metadata). Anything else guardian does not judge (chromem does not read it).

``judge_path(root, rel)`` judges a settled path on disk for live repair: the bytes as above, a
metadata file gone from a folder that still holds documents, something that is not a regular file
where chromem reads one, a stray folder at the root holding chromem files.
"""

from __future__ import annotations

import os
import re
import stat as statmod
from dataclasses import dataclass
from pathlib import Path

from guardian.format.layout import GOB_EXT, GZ_EXT, MAX_FILE_BYTES, METADATA_STEM
from guardian.local.storefs import read_regular

METADATA_NAMES = (METADATA_STEM + GOB_EXT, METADATA_STEM + GZ_EXT)
COLLECTION_DIR = re.compile(r"^[0-9a-f]{8}$")


def role_of(rel: str) -> str | None:
    """"metadata", "document", or None for a path chromem's loader never decodes."""
    folder, slash, name = rel.partition("/")
    if not slash or "/" in name or not folder:
        return None
    if name in METADATA_NAMES:
        return "metadata"
    if name.endswith(GOB_EXT) or name.endswith(GZ_EXT):
        return "document"
    return None


_CHECKS: dict[str, object] = {}   # role -> the decoder's check, bound once (see prepare)


def prepare() -> None:
    """Import the decoder now (numpy and the gob codec: ~0.1 s), e.g. before taking the store lock."""
    _checks()


def _checks() -> dict[str, object]:
    if not _CHECKS:
        from guardian.format import chromem  # the decoder's ~0.1 s import, on first use only
        from guardian.format.gob import GobError

        _CHECKS.update(metadata=chromem.check_collection, document=chromem.check_document, error=GobError)
    return _CHECKS


def damage_of(rel: str, data: bytes) -> str | None:
    """Why chromem would refuse ``data`` as the file ``rel`` (e.g. "empty", the gob error), else None.
    Runs once per file a snapshot reads: the decoder is looked up once, and nothing is built from
    the decoded fields (an import statement and a Document per call were a third of its time)."""
    return verdict(rel, data)[0]


def verdict(rel: str, data: bytes) -> tuple[str | None, str | None]:
    """(why chromem would refuse ``data`` as ``rel``, else None; the document's ID when ``rel`` is a
    document chromem loads, else None): what a scan of the store would find in that file."""
    role = role_of(rel)
    if role is None:
        return None, None
    if not data:
        return "empty", None
    checks = _CHECKS or _checks()
    try:
        doc_id = checks[role](data)
    except checks["error"] as exc:
        return exc.reason or "does not decode", None
    return None, doc_id


# --------------------------------------------------------------------------- one path, on disk


@dataclass(frozen=True)
class Damage:
    """A settled path chromem would refuse, and how it looked when judged (``key``: None = absent)."""

    path: str
    kind: str      # document_damaged | metadata_damaged | metadata_missing | special_file | stray_folder
    reason: str
    key: tuple | None
    held: bool = False   # a process holds it open for writing (a paused writer's): not damage, see repair.held

    def to_dict(self) -> dict:
        data = {"path": self.path, "kind": self.kind, "reason": self.reason}
        if self.held:
            data["held"] = True
        return data


def stat_key(info: os.stat_result | None) -> tuple | None:
    """What must not change between judging a file and repairing it (inode, size, mtime, ctime, type)."""
    if info is None:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, statmod.S_IFMT(info.st_mode))


def lstat_key(path: Path) -> tuple | None:
    try:
        return stat_key(os.lstat(path))
    except FileNotFoundError:
        return None


def judge_path(root: Path, rel: str) -> Damage | None:
    """Judge one store-relative path as chromem's loader would see it now; None when it is fine
    (or changing under our eyes: the caller watches it again), a Damage otherwise."""
    parts = rel.split("/")
    if len(parts) == 1:
        return _judge_root_folder(root, rel)
    if len(parts) != 2 or not COLLECTION_DIR.match(parts[0]):
        return None
    path = root / rel
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return _judge_missing(root, rel)
    except OSError:
        return None
    role = role_of(rel)
    if not statmod.S_ISREG(before.st_mode):
        if role is None and not statmod.S_ISDIR(before.st_mode):
            return None
        if role is None and not (parts[1].endswith(GOB_EXT) or parts[1].endswith(GZ_EXT)):
            return None
        what = "a folder" if statmod.S_ISDIR(before.st_mode) else "not a regular file"
        return Damage(rel, "special_file", f"{what} where chromem reads a file", stat_key(before))
    if role is None:
        return None
    try:
        # chromem's reader stops one byte past its bound too: a huge or sparse file never fills memory
        data = read_regular(path, limit=MAX_FILE_BYTES + 1, prefix=True)
        after = os.lstat(path)
    except OSError:
        return None
    if stat_key(after) != stat_key(before):
        return None  # written while we read: not settled after all
    why = damage_of(rel, data)
    return None if why is None else Damage(rel, f"{role}_damaged", why, stat_key(after))


def _judge_missing(root: Path, rel: str) -> Damage | None:
    folder, name = rel.split("/")
    if name not in METADATA_NAMES:
        return None  # a document deleted: contextd deletes memories
    try:
        names = os.listdir(root / folder)
    except OSError:
        return None  # the collection folder went with it: contextd removed the collection
    if any(n in METADATA_NAMES for n in names):
        return None
    if not any(role_of(f"{folder}/{n}") == "document" for n in names):
        return None  # chromem skips a folder without documents
    return Damage(rel, "metadata_missing", "the collection's metadata file is gone, its documents remain", None)


def _judge_root_folder(root: Path, name: str) -> Damage | None:
    """A folder chromem would load that is not a collection (e.g. ``.backup/`` holding document files)."""
    if COLLECTION_DIR.match(name):
        return None
    path = root / name
    try:
        info = os.lstat(path)
        if not statmod.S_ISDIR(info.st_mode):
            return None
        names = os.listdir(path)
    except OSError:
        return None
    if any(n.endswith(GOB_EXT) or n.endswith(GZ_EXT) for n in names):
        return Damage(name, "stray_folder", "a folder that is not a collection holds chromem files", stat_key(info))
    return None
