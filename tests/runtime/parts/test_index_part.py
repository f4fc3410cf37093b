"""The index part: built at start (or in the background), refreshed on request, polled when nothing
watches the store, cached on stop."""

from __future__ import annotations

from guardian.runtime.parts.index import IndexPart, open_index
from tests.runtime.parts.part_helpers import add_document
from tests.waiting import wait_for


def test_built_before_start_returns_and_refreshed_on_request(parts):
    ctx = parts.make()
    part = IndexPart(ctx, background=False)
    part.start()
    try:
        assert ctx.index is part.index and part.index.built
        summary = part.status()["index"]
        documents = summary["documents"]
        assert documents > 0 and summary["ready"] is True
        add_document(parts.store, "40917930", "fresh")
        ctx.refresh_index(collection="40917930")           # what the watcher part asks for
        assert part.status()["index"]["documents"] == documents + 1
        assert part.thread.name == "guardian-index-upkeep"
    finally:
        part.stop()
    assert not part.thread.is_alive()
    cached = open_index(ctx.config, ctx.paths)             # the stop saved the cache: a restart reads it
    cached.build()
    assert cached.summary()["documents"] == documents + 1


def test_without_a_watcher_the_index_polls_the_store(parts):
    ctx = parts.make()
    part = IndexPart(ctx, background=True, poll=True)
    part.start()
    try:
        wait_for(lambda: part.index.built, what="the background build")
        documents = part.status()["index"]["documents"]
        add_document(parts.store, "40917930", "polled")
        wait_for(lambda: part.status()["index"]["documents"] == documents + 1, what="the poll to see it")
    finally:
        part.stop()


def test_the_first_build_takes_the_preflights_listings_and_a_change_heard_meanwhile_applies_after_it(
        parts, monkeypatch):
    """One walk at start: the pre-flight's scan lists the store, the index builds on its listings (no
    folder listed again), and a write made after that listing, which the watcher reports while the
    build runs, waits for the build and lands on top of it."""
    from guardian.runtime.parts.preflight import PreflightPart
    from tests.index.test_store_index import folder_reads

    ctx = parts.make()
    PreflightPart(ctx).start()
    scan = ctx.last_scan
    assert scan.listings is not None                      # kept for the index
    rel = add_document(parts.store, "40917930", "after-the-listing")
    read = folder_reads(monkeypatch)
    part = IndexPart(ctx, background=True)
    part.start()
    try:
        assert scan.listings is None                      # taken at once: the runtime's verdict does not keep them
        ctx.refresh_index(paths=[parts.store / rel])      # what the watcher asks for (its handlers run once started)
        assert part.first_build.is_set() and part.index.built
        assert part.index.collection(part.index._by_dir["40917930"].name).row_of("after-the-listing") is not None
        assert read == []                                 # neither the build nor the refresh listed a folder
        assert part.start_listings is None
    finally:
        part.stop()



def test_a_stop_right_after_the_first_build_waits_for_its_cache_write(parts, monkeypatch):
    """The build thread's save takes the dirty collections: a stop that did not wait for it found
    nothing to save and the process exited under the write (temp files left, no manifest, the next
    start cold again). Each cache write here takes a moment longer (the real write, delayed)."""
    import time

    from guardian.index.cache import IndexCache

    original = IndexCache.save

    def slow_save(self, index):
        time.sleep(0.5)
        return original(self, index)

    monkeypatch.setattr(IndexCache, "save", slow_save)
    ctx = parts.make()
    part = IndexPart(ctx, background=True)
    part.start()
    wait_for(lambda: part.index.built, what="the background build")
    part.stop()                                            # at once: the build thread is still writing
    cache_dir = ctx.paths.cache / "index"
    assert len(list(cache_dir.glob("*.manifest"))) == len(part.index.collections())
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".guardian-tmp")]
    monkeypatch.undo()
    assert open_index(ctx.config, ctx.paths).build().cached_collections == len(part.index.collections())
