"""Which part of a snapshot a restore brings back: the whole store, one collection, or chosen memories.

Resolved once per chosen snapshot, for every destination alike (the store in place and a target
folder take the same selection: ``--id`` with ``--target`` is no separate mode). So are the good
copies of what that part of the snapshot lacks (``snapshots.restore_inputs``: a collection's
metadata lost in the second before its repair, a document with no content kept), which every
destination's plan writes instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable

from guardian.restoring.memories import ChosenMemory, confirm_ids, find_memories, memory_files
from guardian.restoring.request import RestoreRequest
from guardian.restoring.sources import ChosenSnapshot
from guardian.snapshots.manifest import ManifestEntry
from guardian.snapshots.restore import resolve_scope
from guardian.snapshots.restore_inputs import gather_inputs
from guardian.snapshots.restore_plan import PlanInputs


@dataclass
class Selection:
    collection: str | None
    scope: str | None                        # the collection's folder (None: the whole store)
    memories: list[ChosenMemory] | None = None
    inputs: PlanInputs = field(default_factory=PlanInputs)   # the planner's good copies for this part

    @classmethod
    def of(cls, chosen: ChosenSnapshot, request: RestoreRequest, names: Iterable[str] = ()) -> "Selection":
        """``names``: the collection names guardian has seen for the store (a metadata file with no good
        copy anywhere is rebuilt from the one that hashes to its folder)."""
        if request.ids:
            memories = find_memories(chosen.manifest, request.ids, request.collection)
            confirm_ids(chosen.repo, chosen.snapshot_id, memories)
            selection = cls(request.collection, None, memories)
        else:
            selection = cls(request.collection, resolve_scope(chosen.manifest, request.collection))
        manifest = chosen.manifest
        if selection.memories is not None:   # good copies only for the memories and their collections' metadata
            manifest = replace(manifest, files=selection.files(chosen)[0])
        selection.inputs = gather_inputs(chosen.repo, manifest, selection.scope, names, request.allow_damaged)
        return selection

    def files(self, chosen: ChosenSnapshot) -> tuple[list[ManifestEntry], list[tuple[str, int]]]:
        """The snapshot's files and folders this selection covers (every one of them, for a target)."""
        if self.memories is not None:
            return memory_files(chosen.manifest, self.memories)
        return chosen.manifest.files or [], chosen.manifest.dirs

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.memories or []]
