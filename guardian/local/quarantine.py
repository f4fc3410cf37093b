"""Quarantine: where guardian puts anything it takes out of a store. Nothing is ever deleted.

Layout, in the state dir (outside the store)::

    quarantine/<entry id>/entry.json              the record (written atomically)
    quarantine/<entry id>/payload/<original path> the file or folder, at its original relative path

Stable API (used by restore and by repair)::

    q = Quarantine(paths)                      # paths: guardian.local.paths.StatePaths
    entry = q.put(store_root, "655f126a/1a2b3c4d.gob", reason="truncated document", source="repair")
    q.preserve(store_root, rel_path, reason)   # copy in, leave the original (before an atomic replace)
    q.list() -> [QuarantineEntry]               # oldest first
    q.get(entry_id) -> QuarantineEntry          # UsageError if unknown
    q.restore(entry_id, store_root, validate=None)   # move back; refuses if the destination exists;
                                                      # validate(entry, payload_path) may raise to refuse

Crash safety of ``put``: the record is written first (state ``moving``), then the file is moved
(one rename, or a durable copy across filesystems), then the record says ``quarantined``. A record
left in ``moving`` whose payload exists is reported as quarantined; one whose payload does not
exist is reported as ``incomplete`` (the original never left the store).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat as statmod
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from guardian.errors import Refused, RestoreError, UsageError
from guardian.local import storefs
from guardian.local.fsutil import PRIVATE_FILE, atomic_write_text, ensure_dir, fsync_dir
from guardian.local.paths import StatePaths
from guardian.logs import get_logger

log = get_logger("guardian.local.quarantine")

ENTRY_FILE = "entry.json"
PAYLOAD_DIR = "payload"
EXDEV = 18
STORE_FILE_MODE = 0o644   # as chromem creates its files
STORE_DIR_MODE = 0o755
HASH_LIMIT = 64 << 20     # larger than any chromem file (a sparse 4 GiB file): moved, not hashed


class QuarantineFailed(OSError):
    """A quarantine could not be completed; it was rolled back (the original is where it was)."""


@dataclass
class QuarantineEntry:
    id: str
    time: str                 # UTC, ISO 8601
    original_path: str        # relative to the store root
    reason: str
    kind: str                 # "file" or "folder" (or a caller's more specific label)
    size: int                 # bytes (a folder: the sum of its files)
    sha256: str | None        # files only
    source: str = ""          # who put it there: "restore", "repair", ...
    store: str = ""
    state: str = "quarantined"   # moving | quarantined | restored | incomplete
    restored_at: str | None = None
    folder: str = ""          # the entry's folder in the quarantine (not stored)

    @property
    def restored(self) -> bool:
        return self.state == "restored"

    @property
    def payload_path(self) -> Path:
        return Path(self.folder) / PAYLOAD_DIR / self.original_path

    def to_dict(self) -> dict:
        data = asdict(self)
        data["payload_path"] = str(self.payload_path)
        return data


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_entry_id(moment: datetime) -> str:
    return f"{moment.strftime('%Y%m%dT%H%M%S.%fZ')}-{secrets.token_hex(3)}"


def _check_rel(rel_path: str) -> str:
    rel = str(rel_path).strip("/")
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts) or "\x00" in rel:
        raise UsageError(f"refusing to quarantine the unsafe path {rel_path!r}")
    return rel


# --------------------------------------------------------------------------- measuring (never opens a special file)


def _measure_at(dir_fd: int, name: str) -> tuple[str, int, str | None]:
    """(kind, size, sha256) of an entry, without following symlinks; only regular files are read."""
    info = storefs.stat_at(name, dir_fd)
    if statmod.S_ISDIR(info.st_mode):
        return "folder", _tree_size(dir_fd, name), None
    if statmod.S_ISREG(info.st_mode) and info.st_size <= HASH_LIMIT:
        return "file", info.st_size, storefs.sha256_regular(name, dir_fd)
    return "file", info.st_size if statmod.S_ISREG(info.st_mode) else 0, None


def _tree_size(dir_fd: int, name: str) -> int:
    total = 0
    for _, _, files, fd in os.fwalk(name, dir_fd=dir_fd, follow_symlinks=False):
        for file_name in files:
            with contextlib.suppress(OSError):
                total += storefs.stat_at(file_name, fd).st_size
    return total


# --------------------------------------------------------------------------- copying out of a folder fd


def _copy_entry(src_fd: int, name: str, dst: Path) -> None:
    """Copy an entry (file, symlink, FIFO, device or folder) to ``dst``, durably, without following a
    symlink or opening anything but a regular file; every regular file copied is checked by hash."""
    info = storefs.stat_at(name, src_fd)
    if statmod.S_ISDIR(info.st_mode):
        os.mkdir(dst, 0o700)
        child = os.open(name, storefs.DIR_FLAGS, dir_fd=src_fd)
        try:
            for entry in sorted(os.listdir(child)):
                _copy_entry(child, entry, dst / entry)
        finally:
            os.close(child)
        fsync_dir(dst)
    elif statmod.S_ISREG(info.st_mode):
        _copy_regular(src_fd, name, dst)
    elif statmod.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_fd), dst)
    elif statmod.S_ISFIFO(info.st_mode):
        os.mkfifo(dst, 0o600)
    elif statmod.S_ISCHR(info.st_mode) or statmod.S_ISBLK(info.st_mode):
        os.mknod(dst, statmod.S_IFMT(info.st_mode) | 0o600, info.st_rdev)
    elif statmod.S_ISSOCK(info.st_mode):
        dst.write_bytes(b"")   # a socket holds no data: an empty placeholder records that one was here
    else:
        raise QuarantineFailed(f"cannot copy a {storefs.kind_of(info.st_mode)}: {name}")


def _copy_regular(src_fd: int, name: str, dst: Path) -> None:
    copied = storefs.copy_regular(name, src_fd, dst)
    if storefs.sha256_regular(dst) != copied:
        raise QuarantineFailed(f"the quarantined copy of {name} does not match the original")


def _private(path: Path) -> None:
    """Quarantined copies are guardian's: 0600 files, 0700 folders (never setuid, never world-readable)."""
    if path.is_symlink():
        return
    if not path.is_dir():
        if path.is_file():
            os.chmod(path, PRIVATE_FILE)
        return
    os.chmod(path, 0o700)
    for folder, dirs, files in os.walk(path):
        for name in dirs:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), 0o700)
        for name in files:
            full = os.path.join(folder, name)
            if os.path.isfile(full) and not os.path.islink(full):
                os.chmod(full, PRIVATE_FILE)


def _remove_tree(path: Path) -> None:
    """Remove guardian's own partial copy (in the quarantine, never in the store)."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            os.unlink(path)


class Quarantine:
    def __init__(self, paths: StatePaths, clock: Callable[[], datetime] = _now) -> None:
        self.paths = paths
        self.root = Path(paths.quarantine)
        self.clock = clock

    # ---- putting things in ---------------------------------------------------------------
    def put(self, store_root, rel_path: str, reason: str, kind: str = "file", source: str = "",
            dirs: storefs.DirFds | None = None) -> QuarantineEntry:
        """Move ``store_root/rel_path`` (file, symlink, special file or folder) into the quarantine.

        The entry is reached through folder fds opened without following symlinks (``dirs``: the
        caller's, kept open across a whole restore). Same filesystem: one rename. Otherwise a copy,
        verified by hash, and only then the original is removed; a copy that fails (a full disk) is
        removed again, so the quarantine gives its space back and the original stays in place.
        """
        rel = _check_rel(rel_path)
        with _dirs_for(store_root, dirs) as fds:
            parent_fd, name = _parent(fds, rel, store_root)
            entry = self._new_entry(store_root, rel, reason, kind, source, parent_fd, name, state="moving")
            try:
                self._move_in(parent_fd, name, entry)
            except BaseException:
                self._discard(entry)
                raise
            fds.forget(rel)
            entry.state = "quarantined"
            self._write(entry)
        return entry

    def preserve(self, store_root, rel_path: str, reason: str, source: str = "",
                 dirs: storefs.DirFds | None = None) -> QuarantineEntry:
        """Copy an entry into the quarantine and leave it in place (the caller replaces it atomically
        next). The copy is complete and verified before this returns; on failure it is removed."""
        rel = _check_rel(rel_path)
        with _dirs_for(store_root, dirs) as fds:
            parent_fd, name = _parent(fds, rel, store_root)
            entry = self._new_entry(store_root, rel, reason, "file", source, parent_fd, name, state="quarantined",
                                    write=False)
            try:
                ensure_dir(entry.payload_path.parent)
                _copy_entry(parent_fd, name, entry.payload_path)
                _private(entry.payload_path)
                fsync_dir(entry.payload_path.parent)
                self._write(entry)
            except BaseException:
                self._discard(entry)
                raise
        return entry

    def _move_in(self, parent_fd: int, name: str, entry: QuarantineEntry) -> None:
        payload = entry.payload_path
        ensure_dir(payload.parent)
        try:
            os.rename(name, payload, src_dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno != EXDEV:
                raise
            self._copy_then_remove(parent_fd, name, payload)
        else:
            os.fsync(parent_fd)
        _private(payload)
        fsync_dir(payload.parent)

    def _copy_then_remove(self, parent_fd: int, name: str, payload: Path) -> None:
        """Across filesystems: a complete, hash-verified copy first; the original goes only after."""
        before = storefs.stat_at(name, parent_fd)
        _copy_entry(parent_fd, name, payload)
        after = storefs.stat_at(name, parent_fd)
        if (before.st_ino, before.st_size, before.st_mtime_ns) != (after.st_ino, after.st_size, after.st_mtime_ns):
            raise QuarantineFailed(f"{name} changed while it was copied to the quarantine; left in place")
        if statmod.S_ISDIR(after.st_mode):
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
        os.fsync(parent_fd)

    def _discard(self, entry: QuarantineEntry) -> None:
        """Roll back an unfinished quarantine: guardian's own copy and record go, the space comes back."""
        _remove_tree(Path(entry.folder))
        with contextlib.suppress(OSError):
            fsync_dir(self.root)

    def _new_entry(self, store_root, rel, reason, kind, source, parent_fd, name, state, write=True) -> QuarantineEntry:
        measured_kind, size, digest = _measure_at(parent_fd, name)
        if measured_kind == "folder" and kind == "file":
            kind = "folder"
        moment = self.clock()
        entry_id = new_entry_id(moment)
        entry = QuarantineEntry(id=entry_id, time=_stamp(moment), original_path=rel, reason=reason, kind=kind,
                                size=size, sha256=digest, source=source, store=str(store_root), state=state,
                                folder=str(self.root / entry_id))
        ensure_dir(self.root)
        ensure_dir(self.root / entry_id)
        if write:
            self._write(entry)
        return entry

    def _write(self, entry: QuarantineEntry) -> None:
        data = entry.to_dict()
        data.pop("folder")
        data.pop("payload_path")
        atomic_write_text(Path(entry.folder) / ENTRY_FILE, json.dumps(data, indent=1) + "\n")

    # ---- reading ---------------------------------------------------------------------------
    def list(self) -> list[QuarantineEntry]:
        """The readable entries, oldest first; an unreadable one is logged (see :meth:`listing`)."""
        entries, unreadable = self.listing()
        for name, reason in unreadable:
            log.warning("quarantine_entry_unreadable", entry=name, error=reason,
                        hint=f"its files stay in {self.root / name}; `guardian quarantine list` shows it")
        return entries

    def listing(self) -> tuple[list[QuarantineEntry], list[tuple[str, str]]]:
        """The readable entries, and (folder name, why) for every entry folder that cannot be read."""
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return [], []
        entries, unreadable = [], []
        for name in names:
            try:
                entries.append(self._load(name))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                unreadable.append((name, describe_error(exc)))
        return entries, unreadable

    def get(self, entry_id: str) -> QuarantineEntry:
        if not entry_id or "/" in entry_id or entry_id.startswith("."):
            raise UsageError(f"no quarantine entry {entry_id!r}", "list them with `guardian quarantine list`")
        try:
            return self._load(entry_id)
        except (OSError, ValueError, TypeError, KeyError):
            raise UsageError(f"no quarantine entry {entry_id!r}", "list them with `guardian quarantine list`") from None

    def _load(self, entry_id: str) -> QuarantineEntry:
        folder = self.root / entry_id
        data = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
        fields = {k: data[k] for k in QuarantineEntry.__dataclass_fields__ if k in data and k != "folder"}
        entry = QuarantineEntry(**fields, folder=str(folder))
        _check_rel(entry.original_path)
        if entry.state == "moving":
            entry.state = "quarantined" if os.path.lexists(entry.payload_path) else "incomplete"
        return entry

    # ---- putting things back ------------------------------------------------------------
    def restore(self, entry_id: str, store_root,
                validate: Callable[[QuarantineEntry, Path], None] | None = None) -> QuarantineEntry:
        """Move an entry back to its original place; the record is kept, marked restored.

        Written through folder fds opened without following symlinks (a folder of the path swapped
        for a symlink is refused, never written through); the destination is never overwritten."""
        entry = self.get(entry_id)
        if entry.state != "quarantined":
            raise Refused(f"quarantine entry {entry.id} is {entry.state}; nothing to put back",
                          "list entries with `guardian quarantine list`")
        if not os.path.lexists(entry.payload_path):
            raise RestoreError(f"quarantine entry {entry.id} has no payload at {entry.payload_path}")
        if validate is not None:
            validate(entry, entry.payload_path)
        with storefs.DirFds(store_root) as fds:
            parent_fd, name = _parent_for_restore(fds, entry.original_path)
            if storefs.exists_at(name, parent_fd):
                raise Refused(f"{entry.original_path} already exists in the store; not overwriting it",
                              "pass --replace to move the current one to quarantine first "
                              f"(`guardian quarantine restore {entry.id} --replace`)")
            _put_back(entry.payload_path, parent_fd, name)
        entry.state = "restored"
        entry.restored_at = _stamp(self.clock())
        self._write(entry)
        return entry


@contextlib.contextmanager
def _dirs_for(store_root, dirs: storefs.DirFds | None):
    if dirs is not None:
        yield dirs
        return
    with storefs.DirFds(store_root) as own:
        yield own


def _parent(fds: storefs.DirFds, rel: str, store_root) -> tuple[int, str]:
    try:
        parent_fd, name = fds.parent_of(rel)
        storefs.stat_at(name, parent_fd)
    except FileNotFoundError:
        raise UsageError(f"cannot quarantine {rel}: it does not exist in {store_root}") from None
    except storefs.UnsafeFolder as exc:
        raise RestoreError(f"refusing to reach {rel} through {exc.filename}: {exc.what}",
                           "replace the symlink by a real folder, then run guardian again") from None
    return parent_fd, name


def _parent_for_restore(fds: storefs.DirFds, rel: str) -> tuple[int, str]:
    """The folder fd for ``rel``, creating missing folders (0755, as chromem does); a symlink on the
    way is refused."""
    parts = rel.split("/")
    try:
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            parent_fd, name = fds.parent_of(folder)
            storefs.mkdir_at(parent_fd, name, 0o755)
        return fds.parent_of(rel)
    except storefs.UnsafeFolder as exc:
        raise RestoreError(f"refusing to write through {exc.filename}: {exc.what}",
                           "replace the symlink by a folder") from None


def _put_back(payload: Path, parent_fd: int, name: str) -> None:
    """Payload -> store, never over an existing entry: a rename when on one filesystem (checked free
    just before, under the store lock), else a verified copy under a temp name, renamed into place."""
    try:
        os.rename(payload, name, dst_dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno != EXDEV:
            raise
        _copy_back(payload, parent_fd, name)
        _remove_tree(payload)
    _store_modes(parent_fd, name)
    os.fsync(parent_fd)


def _copy_back(payload: Path, parent_fd: int, name: str) -> None:
    """Copy the payload (guardian's own, in the state dir) under a temp name in the store folder fd,
    then rename it into place: the store never shows a half-copied entry under its real name."""
    temp = storefs.temp_name_for(name)
    _copy_path_to_fd(payload, parent_fd, temp)
    os.rename(temp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)


def _copy_path_to_fd(src: Path, dst_fd: int, dst_name: str) -> None:
    if src.is_symlink():
        os.symlink(os.readlink(src), dst_name, dir_fd=dst_fd)
    elif src.is_dir():
        os.mkdir(dst_name, 0o700, dir_fd=dst_fd)
        child = os.open(dst_name, storefs.DIR_FLAGS, dir_fd=dst_fd)
        try:
            for entry in sorted(os.listdir(src)):
                _copy_path_to_fd(src / entry, child, entry)
            os.fsync(child)
        finally:
            os.close(child)
    elif src.is_file():
        storefs.copy_regular(src, None, dst_name, dst_fd)


def _store_modes(parent_fd: int, name: str) -> None:
    """Back in the store, files get chromem's 0644 and folders 0755 (the quarantine kept them 0600/0700)."""
    info = storefs.stat_at(name, parent_fd)
    if statmod.S_ISREG(info.st_mode):
        os.chmod(name, STORE_FILE_MODE, dir_fd=parent_fd)
    elif statmod.S_ISDIR(info.st_mode):
        for _, dirs, files, fd in os.fwalk(name, dir_fd=parent_fd, follow_symlinks=False):
            os.fchmod(fd, STORE_DIR_MODE)
            for file_name in files:
                if statmod.S_ISREG(storefs.stat_at(file_name, fd).st_mode):
                    os.chmod(file_name, STORE_FILE_MODE, dir_fd=fd)


__all__ = ["Quarantine", "QuarantineEntry", "QuarantineFailed", "new_entry_id"]


def describe_error(exc: BaseException) -> str:
    """Why an entry could not be read, in one line (a missing field names the field)."""
    if isinstance(exc, KeyError):
        return f"{ENTRY_FILE} lacks the field {exc.args[0]!r}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{ENTRY_FILE} is not valid: {exc}"
