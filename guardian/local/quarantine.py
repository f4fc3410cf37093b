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
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from guardian.errors import RestoreError, UsageError
from guardian.local.fsutil import atomic_write_text, copy_synced, durable_move, ensure_dir, fsync_dir, sha256_file
from guardian.local.paths import StatePaths

ENTRY_FILE = "entry.json"
PAYLOAD_DIR = "payload"


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


def _measure(path: Path) -> tuple[str, int, str | None]:
    """(kind, size, sha256) of a file, symlink or folder, without following symlinks."""
    if path.is_symlink():
        return "file", 0, None
    if path.is_dir():
        total = sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(path) for f in fs)
        return "folder", total, None
    return "file", path.stat().st_size, sha256_file(path)


class Quarantine:
    def __init__(self, paths: StatePaths, clock: Callable[[], datetime] = _now) -> None:
        self.paths = paths
        self.root = Path(paths.quarantine)
        self.clock = clock

    # ---- putting things in ---------------------------------------------------------------
    def put(self, store_root, rel_path: str, reason: str, kind: str = "file", source: str = "") -> QuarantineEntry:
        """Move ``store_root/rel_path`` (file, symlink or folder) into the quarantine."""
        rel = _check_rel(rel_path)
        source_path = Path(store_root) / rel
        if not os.path.lexists(source_path):
            raise UsageError(f"cannot quarantine {rel}: it does not exist in {store_root}")
        entry = self._new_entry(store_root, rel, reason, kind, source, source_path, state="moving")
        durable_move(source_path, entry.payload_path)
        entry.state = "quarantined"
        self._write(entry)
        return entry

    def preserve(self, store_root, rel_path: str, reason: str, source: str = "") -> QuarantineEntry:
        """Copy a file into the quarantine and leave it in place (the caller replaces it atomically next)."""
        rel = _check_rel(rel_path)
        source_path = Path(store_root) / rel
        entry = self._new_entry(store_root, rel, reason, "file", source, source_path, state="quarantined",
                                write=False)
        ensure_dir(entry.payload_path.parent)
        if source_path.is_dir() and not source_path.is_symlink():
            shutil.copytree(source_path, entry.payload_path, symlinks=True, copy_function=copy_synced)
        else:
            copy_synced(source_path, entry.payload_path)
        fsync_dir(entry.payload_path.parent)
        self._write(entry)
        return entry

    def _new_entry(self, store_root, rel, reason, kind, source, source_path, state, write=True) -> QuarantineEntry:
        measured_kind, size, digest = _measure(source_path)
        if measured_kind == "folder" and kind == "file":
            kind = "folder"
        moment = self.clock()
        entry_id = new_entry_id(moment)
        entry = QuarantineEntry(id=entry_id, time=_stamp(moment), original_path=rel, reason=reason, kind=kind,
                                size=size, sha256=digest, source=source, store=str(store_root), state=state,
                                folder=str(self.root / entry_id))
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
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        entries = []
        for name in names:
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                entries.append(self._load(name))
        return entries

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
        """Move an entry back to its original place; the record is kept, marked restored."""
        entry = self.get(entry_id)
        if entry.state != "quarantined":
            raise RestoreError(f"quarantine entry {entry.id} is {entry.state}; nothing to put back",
                               "list entries with `guardian quarantine list`")
        if not os.path.lexists(entry.payload_path):
            raise RestoreError(f"quarantine entry {entry.id} has no payload at {entry.payload_path}")
        destination = Path(store_root) / entry.original_path
        if os.path.lexists(destination):
            raise RestoreError(f"{entry.original_path} already exists in the store; not overwriting it",
                               "quarantine or move the current one first, then restore this entry")
        _refuse_symlinked_parents(Path(store_root), entry.original_path)
        if validate is not None:
            validate(entry, entry.payload_path)
        durable_move(entry.payload_path, destination)
        entry.state = "restored"
        entry.restored_at = _stamp(self.clock())
        self._write(entry)
        return entry


def _refuse_symlinked_parents(root: Path, rel: str) -> None:
    probe = root
    for part in rel.split("/")[:-1]:
        probe = probe / part
        if probe.is_symlink():
            raise RestoreError(f"refusing to write through the symlink {probe}", "replace the symlink by a folder")


__all__ = ["Quarantine", "QuarantineEntry", "new_entry_id"]
