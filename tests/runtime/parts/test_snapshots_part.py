"""The snapshot part: one snapshot at start, more on request, none (and no failure) without a store."""

from __future__ import annotations

import shutil

from guardian.runtime.context import SNAPSHOT_TAKEN
from guardian.runtime.parts.snapshots import SnapshotPart
from guardian.snapshots.repository import Repository
from tests.waiting import wait_for


def test_a_snapshot_at_start_and_one_on_request(parts):
    ctx = parts.make()
    parts.listen(ctx, SNAPSHOT_TAKEN)
    part = SnapshotPart(ctx)
    part.start()
    try:
        repo = Repository(ctx.paths.snapshots)
        wait_for(lambda: len(repo.list_ids()) == 1 and parts.events(SNAPSHOT_TAKEN), what="the first snapshot")
        result = ctx.take_snapshot()                       # the service, as `guardian snapshot` asks it
        assert result.id in repo.list_ids() and len(parts.events(SNAPSHOT_TAKEN)) == 2
        assert "guardian_snapshots" in ctx.metrics.render().decode()
    finally:
        part.stop()


def test_no_store_yet_is_no_snapshot_and_no_failure(parts):
    shutil.rmtree(parts.store)
    ctx = parts.make()
    part = SnapshotPart(ctx)
    part.start()
    try:
        assert ctx.take_snapshot() is None
        assert ctx.counters.snapshots_failed == 0 and parts.alerts() == []
    finally:
        part.stop()
