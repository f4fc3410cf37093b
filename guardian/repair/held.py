"""Replace a store file without losing the bytes a writer still holding it writes later.

chromem updates a document by truncating the open file (``os.Create``) and then writing it. A
repair puts a good copy in place by renaming it over the file's name; a writer that truncated the
old file and paused (a stopped, swapped or debugged contextd) writes, when it wakes, into the old
inode - no longer in the store, so its update would be lost. So before such a rename guardian keeps
the old inode: a hard link in the state dir (``held/<id>/file``, beside ``record.json``) made
*before* the rename, so that a guardian killed meanwhile loses nothing either (the next one finds
the record).

Once no process holds the kept file open for writing (``local.holders``: the kernel's lease, or a
scan), its bytes are judged (:meth:`HeldWrites.settle`):

- unchanged since the repair: the writer closed without writing, or there was none. They are the
  damaged original, and go to the quarantine like any damaged original a repair replaces;
- a file chromem loads: the writer's update, newer than the copy guardian put in place. It is put
  back at the path (atomically, through the store's folder fd, keeping guardian's copy the same
  way) provided the path still holds guardian's copy unchanged; if the path changed (a later write
  won) or is gone (contextd deleted the document), the writer's version goes to the quarantine,
  complete;
- anything else (a write cut short: its writer died mid-write): to the quarantine, complete.

The link needs the state dir on the store's filesystem. When it is not (``CannotKeep``), a file
held for writing is left alone until its writer closes it. The caller holds the store lock.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from guardian.errors import GuardianError
from guardian.format.layout import MAX_FILE_BYTES
from guardian.local import storefs
from guardian.local.fsutil import atomic_write_text, ensure_dir, fsync_dir
from guardian.local.holders import PROBE_FLAGS, fd_written, holders_of
from guardian.local.quarantine import STORE_FILE_MODE, Quarantine
from guardian.logs import get_logger
from guardian.store.judge import damage_of

log = get_logger("guardian.repair.held")

RECORD_FILE = "record.json"
LINK_FILE = "file"

# what settle() did with a kept file (Settled.what)
PUT_BACK = "put_back"                 # the writer's version is at the path now
QUARANTINED = "quarantined"           # its bytes are in the quarantine (Settled.reason says why)
ALREADY_KEPT = "already_quarantined"  # the same bytes were quarantined before for this path
DROPPED = "dropped"                   # nothing to keep: guardian's own copy, or the rename never happened


class CannotKeep(GuardianError):
    """The old file cannot be kept by a link (the state dir is on another filesystem)."""

    default_hint = "keep guardian's state dir on the store's filesystem (GUARDIAN_STATE_DIR)"


class LeftAlone(GuardianError):
    """The file is not what the repair may replace right now; it is skipped and judged again later."""

    default_hint = "guardian looks at it again once it has settled"


class StillWritten(LeftAlone):
    """A process holds the file open for writing, and this repair may not keep it (a one-shot command:
    nothing would put the writer's bytes back when it closes)."""

    default_hint = "guardian looks at it again once its writer has closed it"


@dataclass
class HeldRecord:
    """One replaced file whose old inode guardian keeps until nobody writes it."""

    id: str
    rel: str                    # its path in the store
    store: str
    dev: int
    ino: int                    # the old inode (kept as held/<id>/file)
    placed: list[int]           # [inode, size, mtime_ns] of what guardian put at the path
    original_size: int
    original_sha256: str        # the old file's bytes when replaced ("unchanged" means nobody wrote)
    original_is_ours: bool = False   # the old file was guardian's own copy (a put-back): never quarantined
    time: str = ""
    writers: list[str] = field(default_factory=list)   # "pid command" of who held it, when known
    folder: str = ""            # held/<id> (not stored)

    @property
    def link(self) -> Path:
        return Path(self.folder) / LINK_FILE


@dataclass
class Settled:
    record: HeldRecord
    what: str
    reason: str = ""
    quarantine_id: str = ""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _writers_of(dev: int, ino: int) -> list[str]:
    """Who holds the file for writing, for the log (best effort: a name, never a decision)."""
    try:
        return [f"{h.pid} {h.command}"[:200] for h in holders_of([(dev, ino)]).writers_of(dev, ino)]
    except OSError:
        return []


class HeldWrites:
    """The kept files of one store (``<state>/held``). ``keep_held``: a file a process holds open for
    writing may be replaced (its old inode kept, settled later by whoever runs :meth:`settle_all`: the
    sidecar); without it such a file is refused (``StillWritten``) - a one-shot command would leave
    nobody to put the writer's bytes back."""

    def __init__(self, paths, keep_held: bool = True, quarantine: Quarantine | None = None) -> None:
        self.paths = paths
        self.root = Path(paths.root) / "held"
        self.keep_held = keep_held
        self.quarantine = quarantine or Quarantine(paths)
        self._kept: dict[tuple[str, str], str] | None = None   # (path, sha256) -> quarantine id, read once

    # ---- replacing ---------------------------------------------------------------------------
    def replace(self, folder_fd: int, name: str, rel: str, data: bytes, guard=None,
                original_is_ours: bool = False) -> HeldRecord:
        """Put ``data`` at ``rel`` (``name`` in ``folder_fd``) by a rename, the old file kept by a link
        first. ``guard(rel)`` is called right before the link (it raises to leave the file alone); a
        write into the old file after it is caught by :meth:`settle`, and the name is checked to be
        the same file right before the rename."""
        temp = storefs.write_temp_at(folder_fd, name, data, STORE_FILE_MODE)
        record = None
        try:
            old_fd = storefs.open_regular(name, dir_fd=folder_fd)
            try:
                old = os.fstat(old_fd)
                written = fd_written(old_fd, self.paths.store)
                if written and not self.keep_held:
                    raise StillWritten(f"{rel} is held open for writing by a process; left alone")
                current = storefs.read_to_end(old_fd, old.st_size, MAX_FILE_BYTES + 1)
                if guard is not None:
                    guard(rel)   # before the link (which changes the file's ctime): still the file judged
                record = self._keep(folder_fd, name, rel, old, current, temp, original_is_ours,
                                    _writers_of(old.st_dev, old.st_ino) if written else [])
                # from here every byte written into the old file is kept; only the name must still be it
                if not _same_inode(folder_fd, name, record):
                    raise LeftAlone(f"{rel} was replaced by another file while guardian repaired it; left alone")
                storefs.replace_at(folder_fd, temp, name)
            finally:
                os.close(old_fd)
        except BaseException:
            storefs.unlink_temp_at(folder_fd, temp)
            if record is not None and storefs.exists_at(name, folder_fd) and _same_inode(folder_fd, name, record):
                self._forget(record)   # the rename never happened: the link was all it made
            raise
        os.fsync(folder_fd)
        if record.writers:
            log.warning("held_file_replaced", path=rel, writers=record.writers, held_id=record.id,
                        note="its writer's later bytes are kept and put back when it closes the file")
        return record

    def _keep(self, folder_fd, name, rel, old, current: bytes, temp, original_is_ours, writers) -> HeldRecord:
        placed = storefs.stat_at(temp, folder_fd)
        record_id = f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}-{secrets.token_hex(3)}"
        folder = ensure_dir(self.root / record_id)
        record = HeldRecord(record_id, rel, str(self.paths.store), old.st_dev, old.st_ino,
                            [placed.st_ino, placed.st_size, placed.st_mtime_ns], len(current), _sha256(current),
                            original_is_ours, _now(), writers, str(folder))
        self._write(record)   # first: a record whose link is missing is dropped (killed before linking)
        try:
            os.link(name, record.link, src_dir_fd=folder_fd, follow_symlinks=False)
        except OSError as exc:
            self._forget(record)
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP):   # no link here
                raise CannotKeep(f"cannot keep {rel} by a link in {self.root}: {exc.strerror}") from None
            raise
        fsync_dir(folder)     # the link is durable before the rename that makes it the only copy
        linked = os.lstat(record.link)
        if (linked.st_dev, linked.st_ino) != (old.st_dev, old.st_ino):
            self._forget(record)   # the name was swapped since it was opened: a writer is at work
            raise LeftAlone(f"{rel} was replaced while guardian repaired it; left alone")
        return record

    def _write(self, record: HeldRecord) -> None:
        data = asdict(record)
        data.pop("folder")
        atomic_write_text(Path(record.folder) / RECORD_FILE, json.dumps(data, indent=1) + "\n")

    def _forget(self, record: HeldRecord) -> None:
        """Remove guardian's own record and link (their bytes are in the store or the quarantine)."""
        shutil.rmtree(record.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            fsync_dir(self.root)

    # ---- reading ----------------------------------------------------------------------------
    def records(self) -> list[HeldRecord]:
        """The kept files, oldest first (a record that cannot be read is logged and left)."""
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            folder = self.root / name
            try:
                data = json.loads((folder / RECORD_FILE).read_text())
                found.append(HeldRecord(**data, folder=str(folder)))
                continue
            except FileNotFoundError:
                if not (folder / LINK_FILE).exists():
                    shutil.rmtree(folder, ignore_errors=True)   # killed before anything was kept
                    continue
                problem = "a kept file without its record"   # (the record is written first) never dropped unread
            except (OSError, ValueError, TypeError) as exc:
                problem = str(exc)
            log.error("held_record_unreadable", folder=str(folder), error=problem)
        return found

    def any_settleable(self) -> bool:
        """Is some kept file no longer written by anyone? (A probe each, no lock: the caller then
        takes the store lock and calls :meth:`settle_all`.)"""
        for record in self.records():
            try:
                fd = os.open(record.link, PROBE_FLAGS)
            except OSError:
                return True
            try:
                if not fd_written(fd, record.store):
                    return True
            finally:
                os.close(fd)
        return False

    def pending(self) -> bool:
        try:
            return any(os.scandir(self.root))
        except OSError:
            return False

    # ---- settling ---------------------------------------------------------------------------
    def settle_all(self) -> list[Settled]:
        """Settle every kept file nobody writes any more (see :meth:`settle`); the caller holds the store lock."""
        done = []
        for record in self.records():
            try:
                outcome = self.settle(record)
            except (OSError, GuardianError) as exc:
                log.error("held_settle_failed", path=record.rel, held_id=record.id,
                          error=exc.one_line() if isinstance(exc, GuardianError) else str(exc))
                continue
            if outcome is not None:
                done.append(outcome)
        return done

    def settle(self, record: HeldRecord) -> Settled | None:
        """Judge a kept file whose writer is done; None while a process still holds it for writing."""
        store = Path(record.store)
        try:
            fd = os.open(record.link, PROBE_FLAGS)
        except FileNotFoundError:
            self._forget(record)
            return Settled(record, DROPPED, "the kept file was gone")
        try:
            with storefs.DirFds(store) as dirs:
                folder_fd, name = _parent_or_none(dirs, record.rel)
                if folder_fd is not None and _same_inode(folder_fd, name, record):
                    self._forget(record)   # guardian was stopped before its rename: the file never left
                    return Settled(record, DROPPED, "never replaced")
                if fd_written(fd, store):
                    return None
                data = storefs.read_to_end(fd, os.fstat(fd).st_size, MAX_FILE_BYTES + 1)
                return self._judge(record, data, dirs, folder_fd, name)
        finally:
            os.close(fd)

    def _judge(self, record: HeldRecord, data: bytes, dirs, folder_fd, name) -> Settled:
        if len(data) == record.original_size and _sha256(data) == record.original_sha256:
            if record.original_is_ours:
                self._forget(record)
                return Settled(record, DROPPED, "guardian's own copy, unchanged")
            return self._to_quarantine(record, "damaged original replaced by repair" + (
                "; the writer that held it closed it without writing" if record.writers else ""))
        if len(data) > MAX_FILE_BYTES or damage_of(record.rel, data) is not None:
            why = "too large" if len(data) > MAX_FILE_BYTES else damage_of(record.rel, data)
            return self._to_quarantine(record, f"a write into the replaced file that chromem would refuse "
                                               f"({why}): its writer stopped before the end")
        if folder_fd is None or not self._still_placed(folder_fd, name, record):
            return self._to_quarantine(record, "a paused writer's version, written after guardian's repair; the "
                                               "path was written again (or removed) since: that later change won")
        try:
            ours = self.replace(folder_fd, name, record.rel, data, guard=lambda rel: self._guard_placed(
                folder_fd, name, record), original_is_ours=True)
        except GuardianError as exc:   # the path changed in the last instant: the later write won
            return self._to_quarantine(record, f"a paused writer's version; not put back: {exc.message}")
        self._forget(record)
        with contextlib.suppress(OSError, GuardianError):
            self.settle(ours)   # guardian's own copy, kept the same way in case a writer opened it just then
        log.warning("held_write_put_back", path=record.rel, held_id=record.id, size=len(data),
                    note="a writer that held the file while guardian repaired it wrote its update: it is in place")
        return Settled(record, PUT_BACK, "the writer's update, written after the repair")

    def _still_placed(self, folder_fd: int, name: str, record: HeldRecord) -> bool:
        info = storefs._lstat_or_none(name, folder_fd)
        return info is not None and [info.st_ino, info.st_size, info.st_mtime_ns] == list(record.placed)

    def _guard_placed(self, folder_fd: int, name: str, record: HeldRecord) -> None:
        if not self._still_placed(folder_fd, name, record):
            raise LeftAlone(f"{record.rel} changed since guardian's repair")

    def _to_quarantine(self, record: HeldRecord, reason: str) -> Settled:
        """Into the quarantine, once: bytes already quarantined for this path (the same damage again)
        are not kept twice."""
        digest = storefs.sha256_regular(record.link)
        if self._kept is None:
            self._kept = {(e.original_path, e.sha256): e.id for e in self.quarantine.list()
                          if e.state == "quarantined" and e.sha256 and e.store in ("", record.store)}
        known = self._kept.get((record.rel, digest))
        if known is not None:
            self._forget(record)
            return Settled(record, ALREADY_KEPT, reason, known)
        entry = self.quarantine.adopt(record.link, record.rel, record.store, reason=reason, source="repair")
        self._kept[(record.rel, digest)] = entry.id
        self._forget(record)
        if record.original_size == entry.size and digest == record.original_sha256:
            log.info("replaced_file_quarantined", path=record.rel, quarantine_id=entry.id, reason=reason)
        else:   # a writer's bytes that could not be put back (cut short, or a later write won)
            log.warning("writer_bytes_quarantined", path=record.rel, quarantine_id=entry.id, reason=reason)
        return Settled(record, QUARANTINED, reason, entry.id)


def _parent_or_none(dirs: storefs.DirFds, rel: str) -> tuple[int | None, str]:
    try:
        return dirs.parent_of(rel)
    except (OSError, storefs.UnsafeFolder):
        return None, rel.rsplit("/", 1)[-1]


def _same_inode(folder_fd: int, name: str, record: HeldRecord) -> bool:
    info = storefs._lstat_or_none(name, folder_fd)
    return info is not None and (info.st_dev, info.st_ino) == (record.dev, record.ino)
