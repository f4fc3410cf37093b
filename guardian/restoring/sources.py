"""Where a restore's snapshot comes from: this store's own repository, or a replica.

A source is a context manager (``open``) yielding a ``ChosenSnapshot``: the repository its blobs
are read from, the snapshot's id and manifest, and what the source adds to the outcome (the
replica, what was fetched). A dry run writes nothing anywhere: a replica's snapshot this machine
lacks is then fetched into a temporary repository that is removed afterwards.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

from guardian.local.paths import StatePaths
from guardian.snapshots.manifest import Manifest
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore import choose_readable, read_snapshot
from guardian.restoring.request import RestoreRequest


@dataclass
class ChosenSnapshot:
    repo: Repository
    snapshot_id: str
    manifest: Manifest
    skipped: list[str] = field(default_factory=list)   # newer snapshots passed over: damaged manifests


@dataclass
class OpenedSource:
    """A repository ready to choose from. ``choose`` reads the manifest: an in-place restore calls it
    under the store lock (a prune never removes the snapshot between the choice and the restore)."""

    repo: Repository
    pinned: str | None = None          # the one snapshot the source holds for this restore (a fetch)
    notes: dict = field(default_factory=dict)   # what the source adds to the outcome's JSON
    local: bool = True                 # in this store's own repository (where the sidecar reads it)

    def choose(self, request: RestoreRequest) -> ChosenSnapshot:
        snapshot_id = self.pinned or request.snapshot_id
        if snapshot_id:
            return ChosenSnapshot(self.repo, snapshot_id, read_snapshot(self.repo, snapshot_id))
        return ChosenSnapshot(self.repo, *choose_readable(self.repo, request.at))


class LocalSource:
    """This store's own repository: the newest readable snapshot at or before the request's time."""

    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths

    @contextlib.contextmanager
    def open(self, request: RestoreRequest, dry_run: bool = False) -> Iterator[OpenedSource]:
        yield OpenedSource(Repository(self.paths.snapshots))


class ReplicaSource:
    """A replica (``guardian.replicas``): the snapshot is fetched into this store's repository (also
    on a new machine: the state dir is created), then restored as a local one. Only the replica
    package's public fetch functions are used."""

    def __init__(self, replica, paths: StatePaths, progress=None) -> None:
        self.replica, self.paths, self.progress = replica, paths, progress

    @contextlib.contextmanager
    def open(self, request: RestoreRequest, dry_run: bool = False) -> Iterator[OpenedSource]:
        from guardian.replicas.fetch import choose_remote, fetch_snapshot, scratch_copy

        snapshot_id = request.snapshot_id or choose_remote(self.replica, request.at)
        notes: dict = {"replica": self.replica.display}
        repo = Repository(self.paths.snapshots)
        if not dry_run:
            self.paths.ensure()
            fetched = fetch_snapshot(self.replica, repo, self.paths.lock_file, snapshot_id, self.progress)
            yield OpenedSource(repo, snapshot_id, {**notes, "fetch": fetched.to_dict()})
            return
        notes["written_locally"] = False
        if snapshot_id in repo.list_ids():
            yield OpenedSource(repo, snapshot_id, {**notes, "fetch": None})
            return
        with scratch_copy(self.replica, snapshot_id, self.progress) as (folder, fetched):
            yield OpenedSource(Repository(folder / "snapshots"), snapshot_id, {**notes, "fetch": fetched.to_dict()},
                               local=False)
