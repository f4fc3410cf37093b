"""The watcher part: real inotify events on the store reach the other parts as requests."""

from __future__ import annotations

import numpy as np

from guardian.format import chromem
from guardian.local.catalog import Catalog
from guardian.runtime.context import INDEX_STALE, SNAPSHOT_WANTED, STORE_CHANGED
from guardian.runtime.parts.index import IndexPart
from guardian.runtime.parts.watcher import WatcherPart
from tests.runtime.parts.part_helpers import add_document
from tests.waiting import wait_for


def test_a_new_collection_is_remembered_snapshotted_and_indexed(parts):
    ctx = parts.make()
    index = IndexPart(ctx, background=False)
    index.start()
    for event in (SNAPSHOT_WANTED, INDEX_STALE, STORE_CHANGED):
        parts.listen(ctx, event)
    part = WatcherPart(ctx, guard=True)
    part.start()
    ctx.mark_started()   # as the runtime does once every part started (the handlers wait for it)
    try:
        name = "newproj_memories"
        folder = parts.store / chromem.collection_dir_name(name)
        folder.mkdir()
        doc = chromem.Document("n1", {}, np.ones(384, dtype=np.float32) / np.sqrt(384), "hi")
        (folder / f"{chromem.document_stem('n1')}.gob").write_bytes(chromem.encode_document(doc))
        (folder / "00000000.gob").write_bytes(chromem.encode_collection(name, {}))
        wait_for(lambda: name in Catalog(ctx.paths.catalog_file).names(), timeout=60, what="the name in the catalog")
        wait_for(lambda: parts.events(SNAPSHOT_WANTED), what="a snapshot request")
        assert parts.events(STORE_CHANGED)                # raw events go out too (capture, health)
        wait_for(lambda: "newproj_memories" in [c["name"] for c in index.status()["index"]["collections"]],
                 what="the new collection in the index")
    finally:
        part.stop()
        index.stop()


def test_in_serve_a_changed_document_only_refreshes_the_index(parts):
    ctx = parts.make()
    parts.listen(ctx, INDEX_STALE)
    parts.listen(ctx, SNAPSHOT_WANTED)
    ctx.mark_started()   # a part started after the runtime's start (the store appeared): not held
    part = WatcherPart(ctx, guard=False)
    part.start()
    assert not part.watcher.held
    try:
        rel = add_document(parts.store, "40917930", "served")
        wait_for(lambda: any(str(p).endswith(rel.split("/")[1]) for e in parts.events(INDEX_STALE)
                             for p in (e["paths"] or [])), what="an index refresh of the new file")
        assert parts.events(SNAPSHOT_WANTED) == []
    finally:
        part.stop()


def test_before_every_part_started_changes_are_gathered_and_handled_once_they_are(parts):
    """Started first in `guardian run` (before the pre-flight lists the store), the watcher hears writes
    at once but calls no handler until the parts they talk to (repair, index) are up."""
    ctx = parts.make()
    for event in (INDEX_STALE, STORE_CHANGED):
        parts.listen(ctx, event)
    part = WatcherPart(ctx, guard=False)
    part.start()
    try:
        assert part.watcher.held
        rel = add_document(parts.store, "40917930", "early")
        wait_for(lambda: "40917930" in part.watcher._pending, what="the write gathered")
        assert parts.events(STORE_CHANGED)           # raw events go out at once (capture, health)...
        assert parts.events(INDEX_STALE) == []       # ...the handlers wait: the worker takes nothing while held
        ctx.mark_started()
        wait_for(lambda: any(str(p).endswith(rel.split("/")[1]) for e in parts.events(INDEX_STALE)
                             for p in (e["paths"] or [])), what="the gathered write handled")
        assert not part.watcher.held
    finally:
        part.stop()
