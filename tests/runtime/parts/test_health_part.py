"""The store health part: a changed path is judged once settled; damage is announced and the verdict
follows it (a real store, real scans, the real settle tracker)."""

from __future__ import annotations

import os

from guardian.runtime.context import DAMAGE_FOUND, REPAIRED, STORE_CHANGED, VERDICT
from guardian.runtime.parts.health import StoreHealthPart
from tests.runtime.parts.part_helpers import changed, first_document
from tests.waiting import wait_for


def test_damage_that_settles_is_announced_and_healing_clears_it(parts):
    ctx = parts.make(settle_seconds=0.2)
    parts.listen(ctx, DAMAGE_FOUND)
    part = StoreHealthPart(ctx)
    part.start()
    try:
        assert ctx.last_scan is not None and ctx.ask(VERDICT)["loadable"] is True   # scanned at start
        victim = first_document(parts.store)
        good = victim.read_bytes()
        victim.write_bytes(b"")                          # chromem refuses a 0-byte file
        rel = f"{victim.parent.name}/{victim.name}"
        ctx.emit(STORE_CHANGED, events=changed(rel))
        wait_for(lambda: parts.events(DAMAGE_FOUND), what="damage_found")
        damage = parts.events(DAMAGE_FOUND)[0]["damages"][0]
        assert damage.path == rel
        verdict = ctx.ask(VERDICT)
        assert verdict["loadable"] is False and [d["path"] for d in verdict["damaged"]] == [rel]
        assert part.status()["health"]["damaged"][0]["path"] == rel
        assert ctx.metrics.render().decode().count("guardian_store_loadable 0.0") == 1
        assert "guardian_damage_unrepaired 1.0" in ctx.metrics.render().decode()   # what the alert rule reads

        victim.write_bytes(good)                          # healed (by a writer, or a repair)
        ctx.emit(STORE_CHANGED, events=changed(rel))
        wait_for(lambda: not part.status()["health"]["damaged"], what="the damage to clear")
        wait_for(lambda: ctx.ask(VERDICT)["loadable"] is True, what="a loadable verdict")
        assert "guardian_damage_unrepaired 0.0" in ctx.metrics.render().decode()
        assert len(parts.events(DAMAGE_FOUND)) == 1       # the same damage is never announced twice
    finally:
        part.stop()
    assert not part.thread.is_alive()


def test_a_file_held_for_writing_is_not_damage_until_its_writer_lets_go(parts, tmp_path):
    """A writer paused between its truncate and its write: never judged as damage while it holds the
    file (however long); past the grace it is announced once as *held*; a truncate(2) that nobody
    holds (one modify event, no close event at all) is damage as soon as it is quiet."""
    from tests.paused_writer import PausedWriter

    ctx = parts.make(settle_seconds=0.2, held_repair_seconds=1.0)
    parts.listen(ctx, DAMAGE_FOUND)
    part = StoreHealthPart(ctx)
    part.start()
    paused = None
    try:
        victim = first_document(parts.store)
        rel = f"{victim.parent.name}/{victim.name}"
        paused = PausedWriter(victim, tmp_path)
        ctx.emit(STORE_CHANGED, events=changed(rel))   # the truncate's modify event (no close yet)
        wait_for(lambda: parts.events(DAMAGE_FOUND), what="the held file announced past the grace")
        [held] = parts.events(DAMAGE_FOUND)[0]["damages"]
        assert held.path == rel and held.held and held.reason == "empty"
        assert part.status()["health"]["held"] == [rel] and part.status()["health"]["damaged"] == []
        paused.close_without_writing()                 # its writer let go of a 0-byte file: damage now
        wait_for(lambda: len(parts.events(DAMAGE_FOUND)) == 2, what="the damage once nobody holds it")
        [damage] = parts.events(DAMAGE_FOUND)[1]["damages"]
        assert damage.path == rel and not damage.held
        assert part.status()["health"]["held"] == []

        other = sorted(p for p in parts.store.glob("*/*.gob") if p.parent != victim.parent
                       and not p.name.startswith("00000000"))[0]
        os.truncate(other, 0)                          # truncate(2): no open, no close
        other_rel = f"{other.parent.name}/{other.name}"
        ctx.emit(STORE_CHANGED, events=changed(other_rel))
        wait_for(lambda: len(parts.events(DAMAGE_FOUND)) == 3, what="the truncated file judged")
        assert [d.path for d in parts.events(DAMAGE_FOUND)[2]["damages"]] == [other_rel]
    finally:
        if paused is not None:
            paused.stop()
        part.stop()


def test_a_repair_makes_it_rescan_at_once(parts):
    ctx = parts.make()
    part = StoreHealthPart(ctx)
    part.start()
    try:
        first = ctx.last_scan
        ctx.emit(REPAIRED, actions=[{"path": "x"}])
        wait_for(lambda: ctx.last_scan is not first, what="a rescan after the repair")
        assert ctx.last_scan.loadable
    finally:
        part.stop()


def test_harmless_writes_update_the_shared_verdict_without_reading_the_store_again(parts):
    """Every settled write shows in the published scan (documents, metrics, STORE_SCANNED), at the cost of
    the changed paths only: after the first whole read, none again; a new collection folder is read whole."""
    from guardian.format.layout import collection_dir_name
    from guardian.runtime.context import STORE_SCANNED
    from tests.runtime.parts.part_helpers import add_document

    ctx = parts.make(settle_seconds=0.2)
    parts.listen(ctx, STORE_SCANNED)
    part = StoreHealthPart(ctx)
    part.start()
    try:
        wait_for(lambda: part.live is not None, what="the live scan's first read")
        documents = sum(ctx.last_scan.loaded_collections().values())
        for i in range(5):
            rel = add_document(parts.store, "40917930", f"live-{i}", axis=i)
            ctx.emit(STORE_CHANGED, events=changed(rel))
            wait_for(lambda: sum(ctx.last_scan.loaded_collections().values()) == documents + i + 1,
                     what=f"document {i} in the shared scan")
            assert f"guardian_documents {float(documents + i + 1)}" in ctx.metrics.render().decode()
        folder = parts.store / collection_dir_name("born_live")
        folder.mkdir()
        from guardian.format import chromem

        (folder / "00000000.gob").write_bytes(chromem.encode_collection("born_live", {}, compress=False))
        rel = add_document(parts.store, folder.name, "first-born", axis=7)
        ctx.emit(STORE_CHANGED, events=[*changed(folder.name, kind="created"), *changed(rel, kind="created")])
        wait_for(lambda: ctx.last_scan.loaded_collections().get("born_live") == 1, what="the new collection")
        assert part.full_reads == 1 and part.live.updates >= 6
        assert parts.events(STORE_SCANNED)[-1]["scan"] is ctx.last_scan
    finally:
        part.stop()


def test_damage_no_event_announced_is_found_by_the_first_read_and_judged(parts):
    """Damage already there when the part starts (made while guardian was down, or left by a pre-flight
    that could not repair it: a full disk) is announced like a change, so the live repair tries again."""
    ctx = parts.make(settle_seconds=0.2)
    victim = first_document(parts.store)
    victim.write_bytes(b"")
    parts.listen(ctx, DAMAGE_FOUND)
    part = StoreHealthPart(ctx)
    part.start()
    try:
        wait_for(lambda: parts.events(DAMAGE_FOUND), what="the damage found by the first read")
        assert [d.path for d in parts.events(DAMAGE_FOUND)[0]["damages"]] == [f"40917930/{victim.name}"]
    finally:
        part.stop()
