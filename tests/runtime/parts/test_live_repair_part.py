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
