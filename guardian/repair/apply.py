"""Apply a repair plan to the store. The caller holds the store lock (``guardian.local.lock.store_lock``).

Every action is atomic on its own and safe to repeat, so a repair killed at any point and run again
converges to the same store:

- a write goes to a temp file in the same folder (never named ``*.gob``/``*.gob.gz``), fsynced,
  renamed over the target; a file it replaces is first *copied* into the quarantine (the store never
  holds a gap where a document silently disappears); a folder in the way is *moved* to quarantine;
- a target already holding exactly the bytes to write is left alone;
- a quarantine is one rename (``Quarantine.put``); a path already gone is skipped;
- a damaged file already preserved with the same content is not preserved twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from guardian.errors import GuardianError
from guardian.format import chromem
from guardian.format.gob import GobError
from guardian.local.fsutil import TEMP_PREFIX, atomic_write
from guardian.local.quarantine import Quarantine
from guardian.repair.plan import RepairAction, RepairPlan
from guardian.snapshots.repository import Repository

STORE_FILE_MODE = 0o644  # as chromem creates its files, so contextd (maybe another user) can read them
SOURCE = "repair"


@dataclass
class Applied:
    action: RepairAction
    ok: bool
    detail: str = ""
    quarantine_id: str = ""

    def to_dict(self) -> dict:
        data = self.action.to_dict()
        data["ok"] = self.ok
        if self.detail:
            data["detail"] = self.detail
        if self.quarantine_id:
            data["quarantine_id"] = self.quarantine_id
        return data


class FileChanged(GuardianError):
    """A file changed after it was judged: a writer is at work, so the repair leaves it alone."""

    default_hint = "guardian looks at it again once it has settled"


class PlanApplier:
    """``guard(rel)`` (live repair) is called right before each rename or move in the store; it
    raises FileChanged if the file is no longer what was judged, and the action is skipped."""

    def __init__(self, store_root, quarantine: Quarantine, repo: Repository, compress: bool,
                 guard=None) -> None:
        self.root = Path(store_root)
        self.guard = guard
        self.quarantine = quarantine
        self.repo = repo
        self.compress = compress
        self._preserved: dict[tuple[str, str], str] | None = None

    # ---- entry point -------------------------------------------------------------------
    def apply(self, plan: RepairPlan) -> list[Applied]:
        clean_temp_files(self.root)
        return [self.apply_one(action) for action in plan.actions]

    def apply_one(self, action: RepairAction) -> Applied:
        try:
            if self.guard is not None:
                return self.guarded(action)
            if action.kind == "quarantine":
                return self.move_out(action)
            return self.write(action, self.bytes_for(action))
        except FileChanged as exc:
            return Applied(action, False, f"skipped: {exc.message}")
        except (OSError, GuardianError) as exc:
            message = exc.one_line() if isinstance(exc, GuardianError) else f"{exc.strerror or exc}"
            return Applied(action, False, f"failed: {message}")

    def guarded(self, action: RepairAction) -> Applied:
        """Live repair: the same moves, each checked against the judged state just before it lands."""
        if action.kind == "quarantine":
            self.guard(action.path)
            return self.move_out(action)
        data = self.bytes_for(action)
        target = self.root / action.path
        if os.path.lexists(target) and not (target.is_dir() and not target.is_symlink()):
            current = read_or_none(target)
            if current == data:
                return Applied(action, True, "already in place")
            quarantine_id = self.preserve(action, current)
            note = replace_checked(self.root, action.path, data, self.guard)
            return Applied(action, True, note, quarantine_id=quarantine_id)
        self.guard(action.path)
        return self.write(action, data)

    # ---- what to write -----------------------------------------------------------------
    def bytes_for(self, action: RepairAction) -> bytes:
        if action.kind in ("restore_metadata", "restore_document"):
            data = self.repo.read_blob(action.blob)
        elif action.kind == "rebuild_metadata":
            data = chromem.encode_collection(action.name, action.metadata or {}, self.compress)
        elif action.kind == "convert_document":
            payload = chromem.gob_stream((self.root / action.from_path).read_bytes())
            data = chromem.gzip_bytes(payload) if self.compress else payload
        else:
            raise ValueError(f"unknown action {action.kind}")
        check_decodes(action, data)
        return data

    # ---- the two primitive moves --------------------------------------------------------
    def move_out(self, action: RepairAction) -> Applied:
        if not os.path.lexists(self.root / action.path):
            return Applied(action, True, "already gone from the store")
        entry = self.quarantine.put(self.root, action.path, reason=action.reason,
                                    kind="folder" if action.is_folder else "file", source=SOURCE)
        return Applied(action, True, quarantine_id=entry.id)

    def write(self, action: RepairAction, data: bytes) -> Applied:
        target = self.root / action.path
        quarantine_id = ""
        if target.is_dir() and not target.is_symlink():
            quarantine_id = self.quarantine.put(self.root, action.path, kind="folder", source=SOURCE,
                                                reason=f"a folder where {action.path} belongs ({action.reason})").id
        elif os.path.lexists(target):
            current = read_or_none(target)
            if current == data:
                return Applied(action, True, "already in place")
            quarantine_id = self.preserve(action, current)
        atomic_write(target, data, mode=STORE_FILE_MODE)
        return Applied(action, True, quarantine_id=quarantine_id)

    def preserve(self, action: RepairAction, current: bytes | None) -> str:
        """Copy the damaged file into the quarantine once (a re-run finds the earlier copy)."""
        digest = hashlib.sha256(current).hexdigest() if current is not None else None
        known = self.preserved().get((action.path, digest)) if digest else None
        if known:
            return known
        entry = self.quarantine.preserve(self.root, action.path, source=SOURCE,
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
    from guardian.local import storefs
    from guardian.store.judge import damage_of

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
        if action.kind in ("restore_metadata", "rebuild_metadata"):
            if not chromem.decode_collection(data).name:
                raise GobError("the metadata holds no collection name")
        else:
            chromem.decode_document(data)
    except GobError as exc:
        raise GuardianError(f"refusing to write {action.path}: {exc.reason}",
                            "the source is damaged; run `guardian verify`") from None


def read_or_none(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def clean_temp_files(root: Path) -> int:
    """Remove guardian's own temp files left in the store by a killed writer (ours by name)."""
    removed = 0
    with contextlib.suppress(OSError):
        folders = [root, *(Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False))]
        for folder in folders:
            with contextlib.suppress(OSError):
                for entry in os.scandir(folder):
                    if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                        os.unlink(entry.path)
                        removed += 1
    return removed
