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
