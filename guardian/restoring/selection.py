"""Which part of a snapshot a restore brings back: the whole store, one collection, or chosen memories.

Resolved once per chosen snapshot, for every destination alike (the store in place and a target
folder take the same selection: ``--id`` with ``--target`` is no separate mode).
"""

from __future__ import annotations

from dataclasses import dataclass

from guardian.restoring.memories import ChosenMemory, confirm_ids, find_memories, memory_files
from guardian.restoring.request import RestoreRequest
from guardian.restoring.sources import ChosenSnapshot
from guardian.snapshots.manifest import ManifestEntry
from guardian.snapshots.restore import resolve_scope


@dataclass
class Selection:
    collection: str | None
    scope: str | None                        # the collection's folder (None: the whole store)
    memories: list[ChosenMemory] | None = None

    @classmethod
    def of(cls, chosen: ChosenSnapshot, request: RestoreRequest) -> "Selection":
        if request.ids:
            memories = find_memories(chosen.manifest, request.ids, request.collection)
            confirm_ids(chosen.repo, chosen.snapshot_id, memories)
            return cls(request.collection, None, memories)
        return cls(request.collection, resolve_scope(chosen.manifest, request.collection))

    def files(self, chosen: ChosenSnapshot) -> tuple[list[ManifestEntry], list[tuple[str, int]]]:
        """The snapshot's files and folders this selection covers (every one of them, for a target)."""
        if self.memories is not None:
            return memory_files(chosen.manifest, self.memories)
        return chosen.manifest.files or [], chosen.manifest.dirs

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.memories or []]
