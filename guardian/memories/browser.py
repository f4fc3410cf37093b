"""The one entry point of the memory answers, for the CLI and the HTTP API alike: points in time
given as text (``TIME|ID`` as ``restore --at`` takes them; none: the store as it is now), answers
as dataclasses whose ``to_dict()`` is the JSON both print."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from guardian.errors import NoStoreYet
from guardian.format.layout import collection_dir_name
from guardian.memories.diff import Diff, diff_filesets, differing_files, snapshot_pair
from guardian.memories.filelists import FileLists
from guardian.memories.filesets import snapshot_fileset, store_fileset
from guardian.memories.find import FindQuery, Found, find_memories
from guardian.memories.history import History, memory_history
from guardian.memories.points import resolve_snapshot
from guardian.memories.show import MemoryAt, candidates_in_snapshot, candidates_in_store, memory_at
from guardian.snapshots.manifest import validated_rows
from guardian.snapshots.repository import Repository


@dataclass
class MemoryBrowser:
    repo: Repository
    store: Path
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    @classmethod
    def for_paths(cls, paths) -> "MemoryBrowser":
        """Over a store's state paths (``guardian.local.paths.StatePaths``)."""
        return cls(Repository(paths.snapshots), Path(paths.store))

    def snapshot(self, text: str) -> str:
        return resolve_snapshot(text, self.repo.list_ids(), self.clock())

    def diff(self, from_text: str, to_text: str | None = None, collection: str | None = None) -> Diff:
        """From the snapshot ``from_text`` names to the one ``to_text`` names, or to the store now."""
        dirs = {collection_dir_name(collection)} if collection is not None else None
        lists = FileLists(self.repo)
        if to_text is not None:
            return diff_filesets(*snapshot_pair(lists, self.snapshot(from_text), self.snapshot(to_text)), dirs)
        old = lists.open(self.snapshot(from_text))
        self._require_store()
        rows = old.row_index()
        now = store_fileset(self.store, rows, dirs, self.clock())
        then = snapshot_fileset(old, rows.values())
        validated_rows([rows[p] for p in differing_files(then.files, now.files, dirs) if p in rows], old.id)
        return diff_filesets(then, now, dirs)

    def history(self, memory_id: str, collection: str | None = None) -> History:
        return memory_history(self.repo, memory_id, collection)

    def show(self, memory_id: str, at: str | None = None, collection: str | None = None) -> MemoryAt:
        """The memory at the snapshot ``at`` names, or in the store now."""
        if at is None:
            self._require_store()
            files = candidates_in_store(self.store, memory_id, collection, self.clock())
        else:
            files = candidates_in_snapshot(self.repo, self.snapshot(at), memory_id, collection)
        return memory_at(files, memory_id, collection)

    def find(self, text: str | None = None, where: list[str] = (), memory_id: str | None = None,
             collection: str | None = None) -> Found:
        """``where``: ``KEY=VALUE`` texts, as ``--where`` takes them."""
        return find_memories(self.repo, FindQuery(text, FindQuery.parse_where(list(where)), memory_id, collection))

    def _require_store(self) -> None:
        if not os.path.isdir(self.store):
            raise NoStoreYet(f"no store at {self.store}: there is nothing to compare with now",
                             "name a snapshot instead (see `guardian snapshots`)")
