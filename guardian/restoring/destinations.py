"""Where a restore writes: the store itself, or a new folder (``--target``).

A destination plans (reads what is there now and calls the pure planner: it writes nothing), then
carries a plan out, then says whether chromem will load the result. The store in place takes the
store lock and puts everything it replaces or moves aside into the quarantine; a target folder must
be new or empty and appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from guardian.errors import RestoreError
from guardian.local import storefs
from guardian.local.fsutil import ensure_dir
from guardian.local.lock import store_lock
from guardian.local.paths import StatePaths
from guardian.local.quarantine import Quarantine
from guardian.local.store_users import StoreUsers, store_users
from guardian.restoring.journal import Journal, RestoreRecord
from guardian.restoring.memories import MemoryWriter, metadata_entries, plan_memories, read_current
from guardian.restoring.selection import Selection
from guardian.restoring.sources import ChosenSnapshot
from guardian.snapshots.restore import StoreState, StoreWriter, check_loadable, read_store_state
from guardian.snapshots.restore_plan import RestorePlan, plan_restore
from guardian.snapshots.restore_target import check_target, write_into_target


@dataclass
class Applied:
    """What carrying a plan out did besides the plan itself."""

    quarantined: list[str] = field(default_factory=list)
    refused_damaged: list[dict] = field(default_factory=list)
    left_alone: list[dict] = field(default_factory=list)
    known: dict | None = None        # documents judged as they were written (the loadability check trusts them)
    restore_id: str = ""             # its record in the journal (`restore --undo ID`)


class StoreInPlace:
    """The store itself. A whole store or collection is written by ``snapshots.restore.StoreWriter``
    (staged, verified, committed by renames; whatever is replaced or moved aside goes to quarantine);
    chosen memories by ``restoring.memories.MemoryWriter`` (each file checked against live writers
    right before it lands, nothing else touched)."""

    name = "store"
    target = None

    def __init__(self, paths: StatePaths, create_parents: bool = False) -> None:
        self.paths = paths
        self.root = paths.store
        self.create_parents = create_parents   # a new machine restoring from a replica

    def lock(self, timeout: float):
        return store_lock(self.paths.lock_file, timeout=timeout)

    def users(self) -> StoreUsers | None:
        """The processes using the store now (they would not see a restore until they restart)."""
        return store_users(self.root) if self.root.is_dir() else StoreUsers()

    def prepare(self) -> bool:
        """Create the store folder when it is missing (restoring a lost store is the point); True
        when it was created. Its parent must exist unless ``create_parents``."""
        if os.path.lexists(self.root):
            if not self.root.is_dir():
                raise RestoreError(f"the store {self.root} is not a folder", "move it away or pass the right --store")
            return False
        if not self.root.parent.is_dir() and not self.create_parents:
            raise RestoreError(f"the store {self.root} and its parent folder are missing",
                               "create the parent folder first")
        ensure_dir(self.root, 0o755)
        return True

    def plan(self, chosen: ChosenSnapshot, selection: Selection) -> RestorePlan:
        """Against the store as it is now (a store that does not exist is an empty folder)."""
        exists = self.root.is_dir()
        if selection.memories is not None:
            wanted = [m.entry.path for m in selection.memories]
            current = read_current(self.root, wanted) if exists else {}
            metadata = metadata_entries(chosen.manifest, {m.folder for m in selection.memories})
            return plan_memories(chosen.snapshot_id, selection.memories, metadata, current,
                                 dict(chosen.manifest.dirs))
        state = read_store_state(self.root, selection.scope) if exists else StoreState()
        return plan_restore(chosen.snapshot_id, chosen.manifest.files or [], chosen.manifest.dirs, state.current,
                            selection.scope)

    def apply(self, chosen: ChosenSnapshot, selection: Selection, plan: RestorePlan, progress,
              allow_damaged: bool) -> Applied:
        """Carry the plan out, and record what it did (``journal``: `restore --undo`), also when it
        stops half way."""
        quarantine = Quarantine(self.paths)
        if selection.memories is not None:
            writer = MemoryWriter(self.root, chosen.repo, quarantine, plan, allow_damaged)
            created = [folder for folder, _ in plan.create_dirs]
        else:
            storefs.clean_guardian_temps(self.root)
            writer = StoreWriter(self.root, chosen.repo, quarantine, plan, progress, allow_damaged)
            created = None   # the writer knows which top folders it created whole once it ran
        record = RestoreRecord.new(self.root, chosen.snapshot_id)
        try:
            writer.run()
        finally:
            self.record(record, plan, writer, created)
        if selection.memories is not None:
            return Applied(writer.entries, writer.refused, writer.left_alone, restore_id=record.id)
        return Applied(writer.entries, sorted(writer.refused, key=lambda item: item["path"]), [], writer.known,
                       restore_id=record.id)

    def record(self, record: RestoreRecord, plan: RestorePlan, writer, created: list[str] | None) -> None:
        if not plan.changes:
            return
        record.created = sorted(created if created is not None else writer.whole)
        whole = set(record.created)
        record.entries = list(writer.entries)
        record.written = [a.path for a in plan.actions if a.kind == "write" and a.path.partition("/")[0] not in whole]
        record.state = "done" if sys.exc_info()[0] is None else "stopped"
        Journal(self.paths).save(record)

    def check(self, chosen: ChosenSnapshot, applied: Applied) -> tuple[bool | None, str]:
        return check_loadable(self.root, chosen.manifest.compress, applied.known)


class TargetFolder:
    """A new or empty folder outside the store and the state dir; the store is not touched (and a
    running sidecar is not asked: nothing it guards changes)."""

    name = "target"
    create_parents = False

    def __init__(self, paths: StatePaths, target: str | os.PathLike) -> None:
        self.paths = paths
        self.requested = Path(target)
        self.target = Path(os.path.abspath(os.path.expanduser(str(target))))

    def lock(self, timeout: float):
        return contextlib.nullcontext()   # the folder is new: nothing else writes there

    def users(self) -> StoreUsers | None:
        return None   # a new folder: nobody uses it yet

    def prepare(self) -> bool:
        return False

    def plan(self, chosen: ChosenSnapshot, selection: Selection) -> RestorePlan:
        self.target = check_target(self.requested, self.paths)
        files, dirs = selection.files(chosen)
        return plan_restore(chosen.snapshot_id, files, dirs, {}, selection.scope)

    def apply(self, chosen: ChosenSnapshot, selection: Selection, plan: RestorePlan, progress,
              allow_damaged: bool) -> Applied:
        write_into_target(chosen.repo, plan, self.target)
        return Applied()

    def check(self, chosen: ChosenSnapshot, applied: Applied) -> tuple[bool | None, str]:
        return check_loadable(self.target, chosen.manifest.compress)
