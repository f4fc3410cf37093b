"""The store health part: a changed path is judged once settled; damage is announced and the verdict
follows it (a real store, real scans, the real settle tracker)."""

from __future__ import annotations

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


def test_a_path_still_being_written_is_not_judged(parts):
    ctx = parts.make(settle_seconds=0.2)
    parts.listen(ctx, DAMAGE_FOUND)
    part = StoreHealthPart(ctx)
    part.start()
    try:
        victim = first_document(parts.store)
        victim.write_bytes(b"")
        rel = f"{victim.parent.name}/{victim.name}"
        ctx.emit(STORE_CHANGED, events=[e.__class__("modified", e.rel, closed=False) for e in changed(rel)])
        wait_for(lambda: part.status()["health"]["unsettled"] == 1, what="the open file to be watched")
        # open for writing and under 30 s old: not judged yet, whatever it looks like now
        assert parts.events(DAMAGE_FOUND) == [] and part.status()["health"]["damaged"] == []
    finally:
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
