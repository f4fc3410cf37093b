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
    part = WatcherPart(ctx, guard=False)
    part.start()
    try:
        rel = add_document(parts.store, "40917930", "served")
        wait_for(lambda: any(str(p).endswith(rel.split("/")[1]) for e in parts.events(INDEX_STALE)
                             for p in (e["paths"] or [])), what="an index refresh of the new file")
        assert parts.events(SNAPSHOT_WANTED) == []
    finally:
        part.stop()
