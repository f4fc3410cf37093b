"""The capture part: changes the watcher reports become one incremental snapshot each burst."""

from __future__ import annotations

from guardian.runtime.context import SNAPSHOT_TAKEN, STORE_CHANGED
from guardian.runtime.parts.capture import CapturePart
from guardian.snapshots.manifest import NO_CONTENT_FLAGS
from guardian.snapshots.repository import Repository
from guardian.snapshots.take import take_snapshot
from tests.runtime.parts.part_helpers import add_document, changed
from tests.waiting import wait_for


def documents_in_newest(paths) -> int:
    repo = Repository(paths.snapshots)
    return repo.read_manifest(repo.list_ids()[-1]).documents


def test_a_burst_of_changes_becomes_one_snapshot_holding_them(parts):
    ctx = parts.make(capture_quiet_seconds=0.2, capture_max_wait_seconds=5.0)
    take_snapshot(ctx.paths)
    before = documents_in_newest(ctx.paths)
    parts.listen(ctx, SNAPSHOT_TAKEN)
    part = CapturePart(ctx)
    part.start()
    try:
        rels = [add_document(parts.store, "40917930", f"burst-{i}", axis=i) for i in range(3)]
        ctx.emit(STORE_CHANGED, events=changed(*rels))
        wait_for(lambda: parts.events(SNAPSHOT_TAKEN), what="a capture")   # announced last, after retention
        status = part.status()["capture"]
        assert status["captures"] == 1 and status["failures"] == 0 and status["pending_changes"] == 0
        assert status["last"]["paths"] == 3 and status["last"]["read"] == 3
        assert documents_in_newest(ctx.paths) == before + 3
        assert len(parts.events(SNAPSHOT_TAKEN)) == 1
    finally:
        part.stop()
    assert not part.thread.is_alive()


def test_a_clean_stop_captures_what_is_still_pending(parts):
    ctx = parts.make(capture_quiet_seconds=600.0, capture_max_wait_seconds=600.0)  # nothing falls due by itself
    take_snapshot(ctx.paths)
    before = documents_in_newest(ctx.paths)
    part = CapturePart(ctx)
    part.start()
    rel = add_document(parts.store, "40917930", "pending")
    ctx.emit(STORE_CHANGED, events=changed(rel))
    assert part.status()["capture"]["pending_changes"] == 1 and part.captures == 0
    part.stop()
    assert part.captures == 1 and documents_in_newest(ctx.paths) == before + 1


def test_a_failed_capture_alerts_once_and_keeps_the_changes(parts, tmp_path):
    ctx = parts.make(capture_quiet_seconds=0.05, capture_max_wait_seconds=1.0)
    part = CapturePart(ctx)
    ctx.paths.snapshots.parent.mkdir(parents=True, exist_ok=True)
    ctx.paths.snapshots.write_text("a file where the repository folder belongs")  # every snapshot fails
    part.start()
    try:
        ctx.emit(STORE_CHANGED, events=changed(add_document(parts.store, "40917930", "lost?")))
        wait_for(lambda: part.failures >= 2, what="repeated capture failures")
        wait_for(lambda: parts.alerts().count("snapshot_failed") == 1, what="one snapshot_failed alert")
    finally:
        with part.cond:
            part.queue.take()   # nothing for the clean stop to capture into the broken repository
        part.stop()
    assert parts.alerts().count("snapshot_failed") == 1


def test_a_file_held_mid_write_is_not_captured_until_its_writer_closes_it(parts, tmp_path):
    """A 0-byte file its writer still holds is a write in progress, not a damaged version: the
    newest snapshot keeps the good copy unflagged, and the writer's update is captured once it closes."""
    from tests.paused_writer import PausedWriter, updated_document
    from tests.runtime.parts.part_helpers import first_document

    ctx = parts.make(capture_quiet_seconds=0.2, capture_max_wait_seconds=1.0)
    take_snapshot(ctx.paths)
    part = CapturePart(ctx)
    part.start()
    victim = first_document(parts.store)
    rel = f"{victim.parent.name}/{victim.name}"
    good = victim.read_bytes()
    paused = PausedWriter(victim, tmp_path)
    try:
        other = add_document(parts.store, "40917930", "beside-the-held-one")
        ctx.emit(STORE_CHANGED, events=changed(rel, other))
        wait_for(lambda: part.captures >= 1, what="a capture of the other change")
        repo = Repository(ctx.paths.snapshots)
        rows = {e.path: e for e in repo.read_manifest(repo.list_ids()[-1]).files}
        assert other in rows and not rows[rel].flags & NO_CONTENT_FLAGS and rows[rel].size == len(good)
        assert part.status()["capture"]["last"]["damaged"] == []
        assert part.status()["capture"]["held_for_writing"] == [rel]
        update = updated_document(good, "written after the pause")
        paused.write(update)
        ctx.emit(STORE_CHANGED, events=changed(rel))

        def newest_row():
            return {e.path: e for e in repo.read_manifest(repo.list_ids()[-1]).files}[rel]

        wait_for(lambda: newest_row().size == len(update) and not newest_row().flags & NO_CONTENT_FLAGS,
                 what="the update captured")
    finally:
        paused.stop()
        part.stop()
