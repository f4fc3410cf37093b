"""Apply a repair plan to the store. The caller holds the store lock (``guardian.local.lock.store_lock``).

Every action is atomic on its own and safe to repeat, so a repair killed at any point and run again
converges to the same store:

- a write goes to a temp file in the same folder (never named ``*.gob``/``*.gob.gz``), fsynced,
  renamed over the target; a file it replaces is first *kept* (``repair.held``: a hard link in the
  state dir, so a writer still holding it loses no later byte) and then quarantined, or, where no
  link can be made, *copied* into the quarantine (the store never holds a gap where a document
  silently disappears); a folder in the way is *moved* to quarantine;
- a file a process holds open for writing is never moved out, and replaced only by a repair whose
  runtime stays to put the writer's later bytes back (``keep_held``); otherwise it is left alone;
- a target already holding exactly the bytes to write is left alone;
- a quarantine is one rename (``Quarantine.put``); a path already gone is skipped;
- a damaged file already preserved with the same content is not preserved twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat as statmod
from dataclasses import dataclass
from pathlib import Path

from guardian.errors import GuardianError
from guardian.format import chromem
from guardian.format.gob import GobError
from guardian.format import layout
from guardian.local import storefs
from guardian.local.holders import open_for_writing
from guardian.local.quarantine import Quarantine
from guardian.repair.held import CannotKeep, HeldWrites, LeftAlone, StillWritten
from guardian.repair.plan import RepairAction, RepairPlan
from guardian.snapshots.repository import Repository
from guardian.store.judge import damage_of

STORE_FILE_MODE = 0o644  # as chromem creates its files, so contextd (maybe another user) can read them
SOURCE = "repair"


@dataclass
class Applied:
    action: RepairAction
    ok: bool
    detail: str = ""
    quarantine_id: str = ""
    held: bool = False   # left alone: a process holds the file open for writing (repair.held)

    def to_dict(self) -> dict:
        data = self.action.to_dict()
        data["ok"] = self.ok
        if self.detail:
            data["detail"] = self.detail
        if self.quarantine_id:
            data["quarantine_id"] = self.quarantine_id
        if self.held:
            data["held"] = True
        return data


class FileChanged(LeftAlone):
    """A file changed after it was judged: a writer is at work, so the repair leaves it alone."""

    default_hint = "guardian looks at it again once it has settled"


class PlanApplier:
    """Applies one plan. Every touch of the store goes through folder fds opened without following
    symlinks (``storefs.DirFds``), and only regular files are ever opened. ``guard(rel)`` (live repair)
    is called right before each rename or move in the store; it raises FileChanged if the file is no
    longer what was judged, and the action is skipped. ``keeper`` keeps every file it replaces until
    nobody writes it (``repair.held``)."""

    def __init__(self, store_root, quarantine: Quarantine, repo: Repository, compress: bool,
                 guard=None, keeper: HeldWrites | None = None) -> None:
        self.root = Path(store_root)
        self.guard = guard
        self.keeper = keeper
        self.quarantine = quarantine
        self.repo = repo
        self.compress = compress
        self._preserved: dict[tuple[str, str], str] | None = None
        self.dirs: storefs.DirFds | None = None

    # ---- entry point -------------------------------------------------------------------
    def apply(self, plan: RepairPlan) -> list[Applied]:
        storefs.clean_guardian_temps(self.root)
        with storefs.DirFds(self.root) as self.dirs:
            return [self.apply_one(action) for action in plan.actions]

    def apply_one(self, action: RepairAction) -> Applied:
        try:
            if self.guard is not None:
                return self.guarded(action)
            if action.kind == "quarantine":
                return self.move_out(action)
            if action.kind == "restore_folder":
                return self.restore_folder(action)
            if action.kind == "restore_hidden":
                from guardian.repair.bring_back import bring_back

                return bring_back(self, action)
            return self.write(action, self.bytes_for(action))
        except LeftAlone as exc:
            return Applied(action, False, f"skipped: {exc.message}", held=isinstance(exc, StillWritten))
        except (OSError, GuardianError) as exc:
            message = exc.one_line() if isinstance(exc, GuardianError) else f"{exc.strerror or exc}"
            return Applied(action, False, f"failed: {message}")

    def guarded(self, action: RepairAction) -> Applied:
        """Live repair: the same moves, each checked against the judged state just before it lands."""
        if action.kind == "restore_hidden":   # a whole collection under a running writer: not judged paths
            return Applied(action, False, "skipped: brought back by the next pre-flight or `check --repair`")
        if action.kind == "quarantine":
            self.guard(action.path)
            return self.move_out(action)
        if action.kind == "restore_folder":
            self.guard(action.path)
            return self.restore_folder(action)
        data = self.bytes_for(action)
        parent_fd, name = self.folder(action.path)
        info = storefs._lstat_or_none(name, parent_fd)
        if info is not None and statmod.S_ISREG(info.st_mode) and info.st_size <= chromem.MAX_FILE_BYTES:
            current = read_or_none(parent_fd, name)
            if current == data:
                return Applied(action, True, "already in place")
            return self.replace_file(action, parent_fd, name, data, current)
        self.guard(action.path)
        return self.write(action, data)

    # ---- what to write -----------------------------------------------------------------
    def bytes_for(self, action: RepairAction) -> bytes:
        if action.kind in ("restore_metadata", "restore_document"):
            data = self.repo.read_blob(action.blob)
        elif action.kind == "rebuild_metadata":
            data = chromem.encode_collection(action.name, action.metadata or {}, self.compress)
        elif action.kind == "convert_document":
            payload = chromem.gob_stream(chromem.read_file(self.root / action.from_path))
            data = chromem.gzip_bytes(payload) if self.compress else payload
        elif action.kind == "copy_link_target":
            data = chromem.read_file(self.root / action.path)   # follows the symlink, as chromem does
        else:
            raise ValueError(f"unknown action {action.kind}")
        check_decodes(action, data)
        return data

    # ---- the primitive moves -----------------------------------------------------------
    def folder(self, rel: str) -> tuple[int, str]:
        try:
            return self.fds().parent_of(rel)
        except storefs.UnsafeFolder as exc:
            raise GuardianError(f"refusing to write {rel} through {exc.filename} ({exc.what})",
                                "replace the symlink by a real folder, then run `guardian check --repair`") from None

    def fds(self) -> storefs.DirFds:
        if self.dirs is None:
            self.dirs = storefs.DirFds(self.root)
        return self.dirs

    def move_out(self, action: RepairAction) -> Applied:
        parent_fd, name = self.folder(action.path)
        if not storefs.exists_at(name, parent_fd):
            return Applied(action, True, "already gone from the store")
        if open_for_writing(name, dir_fd=parent_fd, root=self.root):
            raise StillWritten(f"{action.path} is held open for writing by a process; left alone")
        entry = self.quarantine.put(self.root, action.path, reason=action.reason,
                                    kind="folder" if action.is_folder else "file", source=SOURCE, dirs=self.fds())
        return Applied(action, True, quarantine_id=entry.id)

    def write(self, action: RepairAction, data: bytes) -> Applied:
        parent_fd, name = self.folder(action.path)
        info = storefs._lstat_or_none(name, parent_fd)
        quarantine_id = ""
        if info is not None and statmod.S_ISREG(info.st_mode) and info.st_size <= chromem.MAX_FILE_BYTES:
            current = read_or_none(parent_fd, name)
            if current == data:
                return Applied(action, True, "already in place")
            return self.replace_file(action, parent_fd, name, data, current)
        if info is not None:   # a folder, symlink, FIFO, socket, device or huge file: moved out, never read
            what = storefs.kind_of(info.st_mode) if not statmod.S_ISREG(info.st_mode) else "file too large"
            quarantine_id = self.quarantine.put(self.root, action.path, source=SOURCE, dirs=self.fds(),
                                                kind="folder" if statmod.S_ISDIR(info.st_mode) else "file",
                                                reason=f"a {what} where {action.path} belongs ({action.reason})").id
        storefs.atomic_write_at(parent_fd, name, data, mode=STORE_FILE_MODE)
        return Applied(action, True, quarantine_id=quarantine_id)

    def replace_file(self, action: RepairAction, parent_fd: int, name: str, data: bytes,
                     current: bytes | None) -> Applied:
        """Put ``data`` over the regular file at ``action.path``: kept by the keeper (and quarantined
        at once when nobody writes it, the usual case), else copied into the quarantine first."""
        if self.keeper is not None:
            try:
                record = self.keeper.replace(parent_fd, name, action.path, data, self.guard)
            except CannotKeep:
                pass   # no link possible here: the copy below, and a held file is left alone
            else:
                settled = self.keeper.settle(record)
                if settled is None:
                    return Applied(action, True, "a writer still holds the old file: kept until it closes it, "
                                                 f"then its update is put back (held {record.id})")
                return Applied(action, True, "" if settled.what != "put_back" else settled.reason,
                               quarantine_id=settled.quarantine_id)
        if open_for_writing(name, dir_fd=parent_fd, root=self.root):
            raise StillWritten(f"{action.path} is held open for writing by a process; left alone")
        quarantine_id = self.preserve(action, current)
        if self.guard is not None:
            return Applied(action, True, replace_checked(self.root, action.path, data, self.guard),
                           quarantine_id=quarantine_id)
        storefs.atomic_write_at(parent_fd, name, data, mode=STORE_FILE_MODE)
        return Applied(action, True, quarantine_id=quarantine_id)

    def restore_folder(self, action: RepairAction) -> Applied:
        """A real collection folder where chromem found none: the entry goes to quarantine, a folder is
        made, the metadata is written first (a load in between sees a smaller collection, never a
        refused store), then every document."""
        files = self.folder_contents(action)
        if not any(layout.file_stem(n) == layout.METADATA_STEM for n, _ in files):
            raise GuardianError(f"{action.path}: the source holds no collection metadata; not restoring it",
                                "restore the collection with `guardian restore --collection NAME`")
        root_fd, name = self.folder(action.path)
        entry = self.quarantine.put(self.root, action.path, kind="folder", source=SOURCE, dirs=self.fds(),
                                    reason=f"{action.reason}; replaced by a real folder ({action.source})")
        storefs.mkdir_at(root_fd, name, 0o755)
        folder_fd = self.fds().get(action.path)
        files.sort(key=lambda item: layout.file_stem(item[0]) != layout.METADATA_STEM)
        for file_name, data in files:
            storefs.atomic_write_at(folder_fd, file_name, data, mode=STORE_FILE_MODE, sync_dir=False)
        os.fsync(folder_fd)
        return Applied(action, True, f"{len(files)} files", quarantine_id=entry.id)

    def folder_contents(self, action: RepairAction) -> list[tuple[str, bytes]]:
        """(file name, bytes) of every chromem file the new folder gets (each checked to decode)."""
        ext = layout.extension(self.compress)
        found: list[tuple[str, bytes]] = []
        if action.from_path:
            for file_name in sorted(os.listdir(action.from_path)):
                if file_name.endswith(ext):
                    with contextlib.suppress(OSError, GobError):
                        found.append((file_name, chromem.read_file(os.path.join(action.from_path, file_name))))
        else:
            for rel, blob in action.files:
                found.append((rel.rsplit("/", 1)[-1], self.repo.read_blob(blob)))
        return [(name, data) for name, data in found if decodes(name, data)]

    def preserve(self, action: RepairAction, current: bytes | None) -> str:
        """Copy the damaged file into the quarantine once (a re-run finds the earlier copy)."""
        digest = hashlib.sha256(current).hexdigest() if current is not None else None
        known = self.preserved().get((action.path, digest)) if digest else None
        if known:
            return known
        entry = self.quarantine.preserve(self.root, action.path, source=SOURCE, dirs=self.fds(),
                                         reason=f"damaged original replaced by repair ({action.reason})")
        self.preserved()[(action.path, entry.sha256 or "")] = entry.id
        return entry.id

    def preserved(self) -> dict[tuple[str, str], str]:
        if self._preserved is None:
            self._preserved = {(e.original_path, e.sha256): e.id for e in self.quarantine.list()
                               if e.state == "quarantined" and e.sha256 and e.store in ("", str(self.root))}
        return self._preserved


def replace_checked(root: Path, rel: str, data: bytes, guard) -> str:
    """Stage ``data`` next to ``rel``, check with ``guard`` that the file is still the one judged, rename.

    The window between the check and the rename is one system call; a writer that still wrote into
    the old file inside it is caught afterwards (the old inode is held open and compared): its bytes
    are newer than any snapshot copy, so when they decode they are put back. Returns a note ("" or
    what happened)."""
    with storefs.DirFds(root) as dirs:
        folder_fd, name = dirs.parent_of(rel)
        temp = storefs.write_temp_at(folder_fd, name, data, STORE_FILE_MODE)
        old_fd = None
        try:
            old_fd = storefs.open_regular(name, dir_fd=folder_fd)
            judged = os.fstat(old_fd)
            guard(rel)
            storefs.replace_at(folder_fd, temp, name)
        except BaseException:
            storefs.unlink_temp_at(folder_fd, temp)
            if old_fd is not None:
                os.close(old_fd)
            raise
        try:
            os.fsync(folder_fd)
            after = os.fstat(old_fd)
            if (after.st_size, after.st_mtime_ns) == (judged.st_size, judged.st_mtime_ns):
                return ""
            late = os.pread(old_fd, after.st_size, 0)
        finally:
            os.close(old_fd)
        if damage_of(rel, late) is not None:
            return "a write into the old file during the repair was itself damaged; the good copy stays"
        storefs.atomic_write_at(folder_fd, name, late, STORE_FILE_MODE)
        return "a write landed in the old file during the repair: that newer write was put back"


def check_decodes(action: RepairAction, data: bytes) -> None:
    """Never write bytes chromem would refuse (a snapshot blob is checked by hash; this checks meaning)."""
    try:
        if action.kind in ("restore_metadata", "rebuild_metadata") or (
                action.kind == "copy_link_target" and layout.file_stem(action.path.rsplit("/", 1)[-1])
                == layout.METADATA_STEM):
            if not chromem.decode_collection(data).name:
                raise GobError("the metadata holds no collection name")
        else:
            chromem.decode_document(data)
    except GobError as exc:
        raise GuardianError(f"refusing to write {action.path}: {exc.reason}",
                            "the source is damaged; run `guardian verify`") from None


def decodes(file_name: str, data: bytes) -> bool:
    """Whether chromem would read this file cleanly (a file that would not is never written)."""
    try:
        if layout.file_stem(file_name) == layout.METADATA_STEM:
            return bool(chromem.decode_collection(data).name)
        chromem.decode_document(data)
    except GobError:
        return False
    return True


def read_or_none(parent_fd: int, name: str) -> bytes | None:
    """The current bytes of a regular file (bounded: a huge file is not compared, only preserved)."""
    try:
        return storefs.read_regular(name, limit=chromem.MAX_FILE_BYTES, dir_fd=parent_fd)
    except OSError:
        return None


def clean_temp_files(root: Path) -> int:
    """Remove guardian's own temp files left in the store by a killed writer (ours by name)."""
    return len(storefs.clean_guardian_temps(root))
