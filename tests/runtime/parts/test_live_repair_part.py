"""The live repair part: settled damage is alerted and repaired from the newest good snapshot copy."""

from __future__ import annotations

from guardian.runtime.context import DAMAGE_FOUND, LIVE_REPAIR, REPAIRED
from guardian.runtime.parts.live_repair import LiveRepairPart
from guardian.snapshots.take import take_snapshot
from guardian.store.judge import judge_path
from tests.runtime.parts.part_helpers import first_document
from tests.waiting import wait_for


def damage(store, dir_name="40917930"):
    victim = first_document(store, dir_name)
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])          # truncated: chromem refuses the whole store
    rel = f"{dir_name}/{victim.name}"
    return victim, good, judge_path(store, rel)


def test_reported_damage_is_repaired_from_the_snapshot_alerted_and_announced(parts):
    ctx = parts.make()
    take_snapshot(ctx.paths)
    parts.listen(ctx, REPAIRED)
    part = LiveRepairPart(ctx)
    part.start()
    try:
        assert ctx.offers(LIVE_REPAIR)
        victim, good, found = damage(parts.store)
        assert found is not None
        ctx.emit(DAMAGE_FOUND, damages=[found])
        wait_for(lambda: parts.events(REPAIRED), what="the live repair's repaired event")
        assert victim.read_bytes() == good
        assert [a["path"] for a in parts.events(REPAIRED)[0]["actions"]] == [found.path]
        assert part.status()["live_repair"]["repairs"] == 1 and ctx.last_repair["live"] is True
        wait_for(lambda: parts.alerts() == ["corruption_found", "repair_done"], what="the two alerts, in order")
    finally:
        part.stop()
    assert not part.thread.is_alive()


def test_damage_reported_just_before_a_stop_is_still_repaired(parts):
    ctx = parts.make()
    take_snapshot(ctx.paths)
    part = LiveRepairPart(ctx)
    part.start()
    victim, good, found = damage(parts.store)
    ctx.emit(DAMAGE_FOUND, damages=[found])
    part.stop()                                           # waits for the worker to finish what was reported
    assert victim.read_bytes() == good and part.repairs == 1


def test_without_a_good_copy_the_damaged_document_goes_to_quarantine_whole(parts):
    ctx = parts.make()
    part = LiveRepairPart(ctx)
    part.start()
    try:
        victim, _, found = damage(parts.store)
        broken = victim.read_bytes()
        answer = ctx.ask(LIVE_REPAIR, [found])            # the service, called directly
        assert not victim.exists() and answer["loadable"] is True      # the store loads without it
        [action] = answer["actions"]
        assert action["action"] == "quarantined" and action["lost_id"]
        kept = [p for p in ctx.paths.quarantine.rglob(victim.name) if p.is_file()]
        assert [p.read_bytes() for p in kept] == [broken]              # never deleted: kept byte for byte
        assert parts.alerts() == ["corruption_found", "repair_done"]
    finally:
        part.stop()


def test_a_held_file_is_made_loadable_quietly_and_its_writers_update_is_put_back_and_announced(parts, tmp_path):
    """A writer paused mid-write is not damage: no alert; the store is made loadable meanwhile, and once
    the writer writes and closes, its update is put back and announced (the index and a snapshot follow)."""
    import dataclasses

    from tests.paused_writer import PausedWriter, updated_document

    ctx = parts.make()
    take_snapshot(ctx.paths)
    parts.listen(ctx, REPAIRED)
    part = LiveRepairPart(ctx)
    part.start()
    victim = first_document(parts.store)
    good = victim.read_bytes()
    paused = PausedWriter(victim, tmp_path)
    try:
        found = dataclasses.replace(judge_path(parts.store, f"40917930/{victim.name}"), held=True)
        ctx.emit(DAMAGE_FOUND, damages=[found])
        wait_for(lambda: parts.events(REPAIRED), what="the held file made loadable")
        assert victim.read_bytes() == good and part.status()["live_repair"]["kept_for_writers"] == 1
        update = updated_document(good, "the paused writer's update")
        paused.write(update)
        wait_for(lambda: len(parts.events(REPAIRED)) == 2, what="the writer's update put back")
        assert victim.read_bytes() == update
        [put_back] = parts.events(REPAIRED)[1]["actions"]
        assert put_back["path"] == found.path and put_back["action"] == "writer_update_put_back"
        assert part.status()["live_repair"]["writers_put_back"] == 1
        assert parts.alerts() == []                      # nothing was damaged: nothing to alert
    finally:
        paused.stop()
        part.stop()


def test_a_store_unloadable_only_for_a_file_not_settled_yet_is_no_alert(parts):
    """Issue 24 item 10: the repair's final scan may meet a file mid-write elsewhere; that is not
    settled damage that could not be repaired, so no repair_impossible alert and no error."""
    ctx = parts.make()
    take_snapshot(ctx.paths)
    part = LiveRepairPart(ctx)
    part.start()
    try:
        victim, good, found = damage(parts.store)
        mid_write = sorted(p for p in parts.store.glob("*/*.gob") if p.parent != victim.parent
                           and not p.name.startswith("00000000"))[0]
        mid_write.write_bytes(b"")                       # another file, being written, not judged (yet)
        answer = ctx.ask(LIVE_REPAIR, [found])
        assert victim.read_bytes() == good and answer["loadable"] is False
        assert parts.alerts() == ["corruption_found", "repair_done"]
    finally:
        part.stop()


def test_a_repair_that_failed_on_a_full_disk_is_tried_again_until_it_succeeds(parts, tmpfs):
    """The state disk full when damage settles: one repair_impossible, then the repair is retried
    (no alert each time) and done once there is room again."""
    import errno

    state = tmpfs("state", "8m")
    ctx = parts.make()
    assert str(ctx.paths.root).startswith(str(state))
    take_snapshot(ctx.paths)
    filler = state / "filler"
    with open(filler, "wb") as out:                      # the disk fills up
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    part = LiveRepairPart(ctx)
    part.start()
    try:
        victim, good, found = damage(parts.store)
        ctx.emit(DAMAGE_FOUND, damages=[found])
        wait_for(lambda: "repair_impossible" in parts.alerts(), what="the failed repair's alert")
        assert victim.read_bytes() != good and part.status()["live_repair"]["retrying"] == [found.path]
        filler.unlink()                                  # room again
        wait_for(lambda: victim.read_bytes() == good, timeout=60, what="the repair tried again")
        wait_for(lambda: parts.alerts()[-1:] == ["repair_done"], what="repair_done")
        assert parts.alerts().count("repair_impossible") == 1
        assert part.status()["live_repair"]["retrying"] == []
    finally:
        part.stop()
