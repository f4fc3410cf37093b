"""`guardian restore --undo [ID]`: the store as it was before one restore, in one step.

From the restore's record (``journal``): every file or folder it moved aside or replaced comes back
from the quarantine, and every file it wrote where there was none goes to the quarantine. Only what
is still exactly as the restore left it is touched (each file compared with the snapshot's hash): a
file a writer changed since, or a path a writer filled again, is left as it is and named — that
write is newer than either version. Nothing is deleted: the restored versions go to the quarantine.

``plan_undo`` is pure; ``undo_restore`` runs it under the store lock, in the process that guards
the store (the sidecar stops its child around it, as around a restore).
"""

from __future__ import annotations

import contextlib
import os
import stat as statmod
from dataclasses import dataclass, field

from guardian.errors import RestoreError, SnapshotError
from guardian.local import storefs
from guardian.local.lock import store_lock
from guardian.local.quarantine import Quarantine, QuarantineEntry
from guardian.restoring.journal import Journal, RestoreRecord
from guardian.restoring.users import SupervisedChild, label, others_in_the_way, refuse_unless_forced
from guardian.local.store_users import store_users
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore import check_loadable


@dataclass(frozen=True)
class UndoStep:
    kind: str          # "take_out" (the restored version to quarantine) | "put_back" (a quarantine entry)
    path: str
    entry_id: str = ""
    folder: bool = False


@dataclass
class UndoPlan:
    steps: list[UndoStep] = field(default_factory=list)
    left_alone: list[dict] = field(default_factory=list)


def plan_undo(record: RestoreRecord, entries: dict[str, QuarantineEntry], restored: dict[str, str | None],
              current: dict[str, str | None]) -> UndoPlan:
    """What undoing ``record`` takes out and puts back (pure). ``restored``: path -> the hash the
    restore wrote there (the snapshot's); ``current``: path -> its hash now (None: a folder or an
    unreadable file), absent when nothing is there. Folders the restore created whole go whole when
    every file in them is as restored."""
    plan = UndoPlan()
    gone: set[str] = set()

    def as_restored(path: str) -> bool:
        return path in current and restored.get(path) is not None and current[path] == restored[path]

    def take_out(paths) -> None:
        """Each path still as the restore wrote it goes; one a writer changed since stays, named."""
        for path in paths:
            if as_restored(path):
                plan.steps.append(UndoStep("take_out", path))
                gone.add(path)
            elif path in current and path in restored:
                plan.left_alone.append({"path": path, "reason": "changed since the restore (a writer): kept"})

    for folder in record.created:
        inside = sorted(p for p in current if p.startswith(folder + "/"))
        if folder in current and inside and all(as_restored(p) for p in inside):
            plan.steps.append(UndoStep("take_out", folder, folder=True))
            gone.update([folder, *inside])
        else:
            take_out(inside)
    take_out(record.written)
    for entry_id in record.entries:
        entry = entries.get(entry_id)
        if entry is None or entry.state != "quarantined":
            plan.left_alone.append({"path": entry.original_path if entry else entry_id,
                                    "reason": f"quarantine entry {entry_id} is "
                                              f"{entry.state if entry else 'gone'}; nothing to put back"})
            continue
        path = entry.original_path
        if path in current and path not in gone:
            if not as_restored(path):
                plan.left_alone.append({"path": path, "reason": "something else is there since the restore "
                                                                "(a writer): kept; the older version stays in "
                                                                f"quarantine entry {entry_id}"})
                continue
            plan.steps.append(UndoStep("take_out", path))
            gone.add(path)
        plan.steps.append(UndoStep("put_back", path, entry_id, folder=entry.kind == "folder"))
    return plan


@dataclass
class UndoOutcome:
    restore_id: str
    snapshot: str
    taken_out: list[str] = field(default_factory=list)   # quarantine entries holding the restored versions
    put_back: list[str] = field(default_factory=list)    # paths back as they were before the restore
    left_alone: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    child_restarted: bool = False
    loadable: bool | None = None
    load_error: str = ""

    def to_dict(self) -> dict:
        return {"undone": self.restore_id, "snapshot": self.snapshot, "quarantine_entries": self.taken_out,
                "put_back": self.put_back, "left_alone": self.left_alone, "users": self.users,
                "child_restarted": self.child_restarted, "loadable": self.loadable, "load_error": self.load_error}


def undo_restore(paths, restore_id: str | None, force: bool = False, restart_child: bool = True,
                 child: SupervisedChild | None = None, lock_timeout: float = 30.0) -> UndoOutcome:
    """Undo one restore of the store (the newest not undone when ``restore_id`` is None)."""
    journal = Journal(paths)
    record = journal.get(restore_id)
    stopping = child is not None and restart_child
    others = others_in_the_way(store_users(paths.store), child, stopping) if paths.store.is_dir() else []
    refuse_unless_forced(others, child, force)
    outcome = UndoOutcome(record.id, record.snapshot, users=[label(u, child) for u in others],
                          child_restarted=stopping)
    quarantine = Quarantine(paths)
    with child.stopped() if stopping else contextlib.nullcontext():
        with store_lock(paths.lock_file, timeout=lock_timeout):
            record = journal.get(record.id)   # read again under the lock: undone meanwhile?
            if record.state == "undone":
                raise RestoreError(f"restore {record.id} was already undone", "see `guardian quarantine list`")
            entries = {e.id: e for e in quarantine.list() if e.id in set(record.entries)}
            restored = snapshot_hashes(paths, record)
            current = read_paths(paths.store, record, entries)
            plan = plan_undo(record, entries, restored, current)
            outcome.left_alone = plan.left_alone
            try:
                for step in plan.steps:
                    if step.kind == "take_out":
                        outcome.taken_out.append(quarantine.put(
                            paths.store, step.path, f"undo of restore {record.id}: the restored version",
                            kind="folder" if step.folder else "file", source="undo").id)
                    else:
                        quarantine.restore(step.entry_id, paths.store)
                        outcome.put_back.append(step.path)
            finally:
                record.undo_entries += outcome.taken_out
                record.state = "undone"
                journal.save(record)
        outcome.loadable, outcome.load_error = check_loadable(paths.store, None)
    return outcome


def snapshot_hashes(paths, record: RestoreRecord) -> dict[str, str | None]:
    """path -> the hash the restore wrote there: the snapshot's (its manifest must still be there)."""
    try:
        manifest = Repository(paths.snapshots).read_manifest(record.snapshot)
    except SnapshotError as exc:
        raise RestoreError(f"restore {record.id} cannot be undone: its snapshot {record.snapshot} is gone or "
                           f"damaged ({exc.message}), so what it wrote cannot be told from later writes",
                           "put the entries back one by one with `guardian quarantine restore ID`") from None
    return {e.path: e.hash for e in manifest.files or []}


def read_paths(root, record: RestoreRecord, entries: dict[str, QuarantineEntry]) -> dict[str, str | None]:
    """The hash of each path the undo may touch, as it is now (None: a folder or not a regular file)."""
    current: dict[str, str | None] = {}
    wanted = set(record.written) | {e.original_path for e in entries.values()}
    for folder in record.created:
        top = os.path.join(root, folder)
        if os.path.isdir(top) and not os.path.islink(top):
            current[folder] = None
            for name in os.listdir(top):
                wanted.add(f"{folder}/{name}")
    for rel in wanted:
        path = os.path.join(root, rel)
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        digest = None
        if statmod.S_ISREG(info.st_mode):
            with contextlib.suppress(OSError):
                digest = storefs.sha256_regular(path)
        current[rel] = digest
    return current
