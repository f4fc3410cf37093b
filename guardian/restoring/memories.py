"""Chosen memories: `guardian restore --id ID`, one or a few documents back, nothing else touched.

chromem names a document's file from its ID (``sha256(id)[:8]`` in the collection's folder
``sha256(name)[:8]``: ``format.layout``), so the snapshot entry of a memory is found by name,
without reading anything; its blob is then read once to confirm it really holds that ID (two IDs
can share 8 hex digits). A collection chromem is to load needs its metadata file: when the store
lacks it (the collection is gone, or its metadata is), the snapshot's copy is restored too; a
metadata file the store has is never touched.

``plan_memories`` is pure. Writing into a store a contextd may be writing at the same moment is
``MemoryWriter``'s job: each file is checked right before it lands (unchanged since it was read,
held for writing by no process), and a file that appeared meanwhile is never overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
from dataclasses import dataclass
from pathlib import Path

from guardian.errors import CodecError, RestoreError
from guardian.format import chromem
from guardian.format.layout import METADATA_STEM, document_stem, file_stem
from guardian.local import storefs
from guardian.local.holders import holders_of
from guardian.local.quarantine import Quarantine
from guardian.repair.apply import FileChanged, STORE_FILE_MODE, replace_checked
from guardian.snapshots.manifest import Manifest, ManifestEntry
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore_plan import CurrentFile, RestoreAction, RestorePlan
from guardian.store.judge import lstat_key


@dataclass(frozen=True)
class ChosenMemory:
    id: str
    folder: str                 # the collection's folder in the snapshot
    collection: str | None      # its name, from the snapshot's metadata
    entry: ManifestEntry        # the memory's document in the snapshot


def find_memories(manifest: Manifest, ids: tuple[str, ...], collection: str | None = None) -> list[ChosenMemory]:
    """The snapshot's document of each ID, found by file name (pure). RestoreError (the request must
    change) for an ID the snapshot does not hold, or holds in several collections when no
    ``collection`` says which."""
    names = {c.dir: c.name for c in manifest.collections}
    if collection is not None and collection not in names.values():
        known = ", ".join(sorted(n for n in names.values() if n)) or "none"
        raise RestoreError(f"snapshot {manifest.id} has no collection {collection!r} (it has: {known})",
                           "check the name, or pick another --at")
    by_stem: dict[str, list[ManifestEntry]] = {}
    for entry in manifest.files or []:
        folder, _, name = entry.path.rpartition("/")
        if folder and "/" not in folder and folder in names:
            by_stem.setdefault(file_stem(name), []).append(entry)
    chosen = []
    for memory_id in dict.fromkeys(ids):
        found = [e for e in by_stem.get(document_stem(memory_id), [])
                 if collection is None or names[e.path.partition("/")[0]] == collection]
        if not found:
            where = f"collection {collection!r} of snapshot" if collection else "snapshot"
            raise RestoreError(f"memory {memory_id!r} is not in {where} {manifest.id}",
                               "check the id, or pick another --at (see `guardian snapshots`)")
        if len({e.path.partition("/")[0] for e in found}) > 1:
            held = ", ".join(sorted(repr(names[e.path.partition("/")[0]]) for e in found))
            raise RestoreError(f"memory {memory_id!r} is in several collections of snapshot {manifest.id}: {held}",
                               "pass --collection NAME to say which")
        entry = found[0]
        folder = entry.path.partition("/")[0]
        chosen.append(ChosenMemory(memory_id, folder, names[folder], entry))
    return chosen


def confirm_ids(repo: Repository, snapshot_id: str, memories: list[ChosenMemory]) -> None:
    """Read each chosen document's blob once: it must decode to a document with that very ID (a
    document whose name only shares the ID's 8 hex digits is another memory). A blob the snapshot
    did not keep (``hash`` None) is left to the plan, which skips it and says why."""
    for memory in memories:
        if memory.entry.hash is None:
            continue
        data = repo.read_blob(memory.entry.hash)
        try:
            held = chromem.check_document(data)
        except CodecError:
            continue   # a damaged copy: the writer refuses it unless --allow-damaged
        if held != memory.id:
            raise RestoreError(f"memory {memory.id!r} is not in snapshot {snapshot_id}: its file "
                               f"{memory.entry.path} holds memory {held!r}", "check the id, or pick another --at")


def metadata_entries(manifest: Manifest, folders: set[str]) -> dict[str, ManifestEntry]:
    """folder -> the snapshot's metadata file of that collection (pure)."""
    found: dict[str, ManifestEntry] = {}
    for entry in manifest.files or []:
        folder, _, name = entry.path.rpartition("/")
        if folder in folders and file_stem(name) == METADATA_STEM:
            if folder not in found or found[folder].hash is None:
                found[folder] = entry
    return found


def memory_files(manifest: Manifest, memories: list[ChosenMemory]) -> tuple[list[ManifestEntry], list[tuple[str, int]]]:
    """The snapshot files a memory restore may write (each memory's document and its collection's
    metadata) and their folders, with the snapshot's modes."""
    folders = {m.folder for m in memories}
    modes = dict(manifest.dirs)
    entries = list(metadata_entries(manifest, folders).values()) + [m.entry for m in memories]
    return entries, sorted((folder, modes.get(folder, 0o755)) for folder in folders)


def plan_memories(snapshot_id: str, memories: list[ChosenMemory], metadata: dict[str, ManifestEntry],
                  current: dict[str, CurrentFile], folder_modes: dict[str, int] | None = None) -> RestorePlan:
    """What restoring ``memories`` over ``current`` (those paths in the store now) must do. Nothing
    is moved aside: every other file stays as it is. A collection folder the store lacks is created;
    its metadata is written only when the store has none (whatever metadata the store has is kept)."""
    plan = RestorePlan(snapshot_id, None)
    folder_modes = folder_modes or {}
    for folder in sorted({m.folder for m in memories}):
        here = current.get(folder)
        if here is not None and not here.is_dir:
            plan.actions.append(RestoreAction("move_aside", folder, reason="a file is where the snapshot has a folder"))
            here = None
        if here is None:
            plan.create_dirs.append((folder, folder_modes.get(folder, 0o755)))
        has_metadata = any(file_stem(p.rpartition("/")[2]) == METADATA_STEM and not item.is_dir
                           for p, item in current.items() if p.rpartition("/")[0] == folder)
        entry = metadata.get(folder)
        if has_metadata:
            continue
        if entry is None or entry.hash is None:
            plan.actions.append(RestoreAction("skip", f"{folder}/{METADATA_STEM}", entry,
                                              reason="the store lacks this collection's metadata and the snapshot "
                                                     "kept no good copy; chromem will not load the collection"))
        else:
            plan.actions.append(RestoreAction("write", entry.path, entry, reason="the collection's metadata"))
    for memory in memories:
        entry, now = memory.entry, current.get(memory.entry.path)
        if entry.hash is None:
            why = "damaged when snapshotted" if entry.damaged else "unstable while snapshotted"
            plan.actions.append(RestoreAction("skip", entry.path, entry, reason=f"{why}; no content kept"))
        elif now is None:
            plan.actions.append(RestoreAction("write", entry.path, entry, reason=f"memory {memory.id}"))
        elif now.hash == entry.hash:
            plan.actions.append(RestoreAction("keep", entry.path, entry, reason=f"memory {memory.id}"))
        else:
            plan.actions.append(RestoreAction("replace", entry.path, entry, is_dir=now.is_dir,
                                              reason=f"memory {memory.id}: content differs"))
    return plan


def read_current(root: Path, paths: list[str]) -> dict[str, CurrentFile]:
    """The store now at ``paths`` and in their folders (for the metadata), with content hashes and
    the lstat key each was seen with (``keys``: checked again right before each write)."""
    current: dict[str, CurrentFile] = {}
    folders = {p.rpartition("/")[0] for p in paths}
    for folder in folders:
        try:
            info = os.lstat(root / folder)
        except FileNotFoundError:
            continue
        current[folder] = CurrentFile(folder, info.st_size, None, is_dir=statmod.S_ISDIR(info.st_mode))
        if not statmod.S_ISDIR(info.st_mode):
            continue
        for entry in os.scandir(root / folder):
            if file_stem(entry.name) == METADATA_STEM:
                current[f"{folder}/{entry.name}"] = _current(root, f"{folder}/{entry.name}")
    for rel in paths:
        if rel.rpartition("/")[0] in current and current[rel.rpartition("/")[0]].is_dir:
            seen = _current(root, rel)
            if seen is not None:
                current[rel] = seen
    return {k: v for k, v in current.items() if v is not None}


def _current(root: Path, rel: str) -> CurrentFile | None:
    try:
        info = os.lstat(root / rel)
    except FileNotFoundError:
        return None
    if statmod.S_ISDIR(info.st_mode):
        return CurrentFile(rel, 0, None, is_dir=True)
    digest = None
    if statmod.S_ISREG(info.st_mode) and info.st_size <= chromem.MAX_FILE_BYTES:
        with contextlib.suppress(OSError):
            digest = storefs.sha256_regular(root / rel)
    return CurrentFile(rel, info.st_size, digest)


class HeldForWriting(FileChanged):
    """A process holds the file open for writing: its next write is newer than any snapshot copy."""


class MemoryWriter:
    """Carries out a memory plan in a store that may be live. Per file, right before it lands:
    the file must look exactly as when it was planned (``lstat`` key) and no process may hold it
    for writing (``local.holders``; a scan that cannot see every process counts as held). A file
    that is absent is linked into place (``link`` never replaces: a file a writer created meanwhile
    wins); one that is replaced is first copied into the quarantine. A file left alone is reported,
    never forced."""

    def __init__(self, root: Path, repo: Repository, quarantine: Quarantine, plan: RestorePlan,
                 allow_damaged: bool = False) -> None:
        self.root, self.repo, self.quarantine, self.plan = root, repo, quarantine, plan
        self.allow_damaged = allow_damaged
        self.seen = {a.path: lstat_key(root / a.path) for a in plan.actions if a.kind in ("write", "replace")}
        self.reason = f"restore of snapshot {plan.snapshot_id}"
        self.entries: list[str] = []
        self.refused: list[dict] = []
        self.left_alone: list[dict] = []

    def run(self) -> list[str]:
        """Every action of the plan; the quarantine entries made (also in ``entries`` if it stops)."""
        with storefs.DirFds(self.root) as dirs:
            for action in self.plan.actions:
                if action.kind == "move_aside":
                    self.entries.append(self.quarantine.put(self.root, action.path, f"{self.reason}: {action.reason}",
                                                            source="restore", dirs=dirs).id)
            for folder, mode in self.plan.create_dirs:
                storefs.mkdir_at(dirs.get(""), folder, mode)
            # metadata first: a load in between sees the collection, never a folder chromem refuses
            ordered = sorted((a for a in self.plan.actions if a.kind in ("write", "replace")),
                             key=lambda a: file_stem(a.path.rpartition("/")[2]) != METADATA_STEM)
            for action in ordered:
                try:
                    self._land(dirs, action)
                except FileChanged as exc:
                    self.left_alone.append({"path": action.path, "reason": exc.message})
        return self.entries

    def _bytes(self, action: RestoreAction) -> bytes | None:
        data = self.repo.read_blob(action.entry.hash)
        try:
            if file_stem(action.path.rpartition("/")[2]) == METADATA_STEM:
                chromem.check_collection(data)
            else:
                chromem.check_document(data)
        except CodecError as exc:
            if not self.allow_damaged:
                self.refused.append({"path": action.path, "reason": exc.message})
                return None
        return data

    def guard(self, rel: str) -> None:
        """FileChanged unless ``rel`` is as planned and held for writing by nobody."""
        key = lstat_key(self.root / rel)
        if key != self.seen.get(rel):
            raise FileChanged(f"{rel} changed after the restore planned it (a writer is at work); left as it is")
        if key is None:
            return
        info = os.lstat(self.root / rel)
        scan = holders_of([(info.st_dev, info.st_ino)], self.root)
        if scan.maybe_written(info.st_dev, info.st_ino):
            who = ", ".join(f"pid {pid} ({cmd})" for pid, cmd in scan.processes().items()) or \
                "a process guardian cannot inspect"
            raise HeldForWriting(f"{rel} is held open for writing by {who}; left as it is")

    def _land(self, dirs: storefs.DirFds, action: RestoreAction) -> None:
        data = self._bytes(action)
        if data is None:
            return
        folder_fd, name = dirs.parent_of(action.path)
        self.guard(action.path)
        if action.kind == "write":
            self._link_new(folder_fd, name, data, action)
            return
        if action.is_dir:
            self.entries.append(self.quarantine.put(self.root, action.path, f"{self.reason}: {action.reason}",
                                                    source="restore", dirs=dirs).id)
            self.seen[action.path] = None
            self._link_new(folder_fd, name, data, action)
            return
        self.entries.append(self.quarantine.preserve(self.root, action.path, f"{self.reason}: replaced",
                                                     source="restore", dirs=dirs).id)
        replace_checked(self.root, action.path, data, self.guard)

    def _link_new(self, folder_fd: int, name: str, data: bytes, action: RestoreAction) -> None:
        """Put ``data`` at an absent ``name`` without ever replacing what a writer created meanwhile."""
        temp = storefs.write_temp_at(folder_fd, name, data, STORE_FILE_MODE)
        try:
            try:
                os.link(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
            except FileExistsError:
                raise FileChanged(f"{action.path} appeared while the restore ran (a writer is at work); "
                                  "left as it is") from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                    raise
                self.guard(action.path)   # a filesystem without hard links: checked, then one rename
                storefs.replace_at(folder_fd, temp, name)
        finally:
            storefs.unlink_temp_at(folder_fd, temp)
        os.fsync(folder_fd)
