"""StoreIndex on real chromem stores: fixture answers, live refresh, damage, cache, concurrency."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest

from guardian.errors import QueryError
from guardian.format.chromem import Document, collection_dir_name, document_stem, encode_document
from guardian.index import query as q
from guardian.index.store_index import StoreIndex, detect_compress


def ask(index, name, body):
    return index.search(name, q.parse_request(body)).results


def doc_path(store, collection, doc_id, ext):
    return store / collection_dir_name(collection) / (document_stem(doc_id) + ext)


def unit(vector):
    vector = np.asarray(vector, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def write_doc(store, collection, doc_id, vector, content="new", compress=False, metadata=None):
    ext = ".gob.gz" if compress else ".gob"
    path = doc_path(store, collection, doc_id, ext)
    path.write_bytes(encode_document(Document(doc_id, metadata or {}, unit(vector), content), compress))
    return path


def test_fixture_queries_match_chromem_from_store_files(any_store, queries):
    index = StoreIndex(any_store).build()
    for name, cases in queries.items():
        for case in cases:
            for k, key in ((1, "top1"), (5, "top5")):
                (results,) = ask(index, name, dict(case["query"], k=k))
                assert [r["id"] for r in results] == [r["id"] for r in case[key]]
                assert np.allclose([r["similarity"] for r in results],
                                   [r["similarity"] for r in case[key]], atol=1e-5, rtol=0)


def test_collections_contents_and_metadata_match_contents_json(plain_store, contents):
    index = StoreIndex(plain_store).build()
    collections = index.collections()
    assert set(collections) == {c["name"] for c in contents["collections"]}
    for expected in contents["collections"]:
        got = collections[expected["name"]]
        assert got.dir_name == expected["dir"]
        assert got.document_count == len(expected["documents"])
        assert dict(got.metadata) == expected["metadata"]
        for doc in expected["documents"]:
            row = got.row_of(doc["id"])
            assert got.rows.contents[row] == doc["content"]
            assert dict(got.rows.metadatas[row]) == (doc.get("metadata") or {})


def test_detects_compression(any_store):
    assert detect_compress(any_store) is any(any_store.glob("*/00000000.gob.gz"))
    assert detect_compress(any_store / "missing") is False


def test_batch_and_like_queries(plain_store, contents):
    index = StoreIndex(plain_store).build()
    docs = next(c for c in contents["collections"] if c["name"] == "checkpoints")["documents"]
    vectors = [docs[0]["embedding"], docs[1]["embedding"]]
    batch = ask(index, "checkpoints", {"vectors": vectors, "k": 2})
    assert [r[0]["id"] for r in batch] == [docs[0]["id"], docs[1]["id"]]
    assert batch[0][0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    (like,) = ask(index, "checkpoints", {"like": docs[2]["id"], "k": 3})
    assert like[0]["id"] == docs[2]["id"] and len(like) == 3


def test_request_errors_are_4xx(plain_store):
    index = StoreIndex(plain_store).build()
    vector = [0.1] * 384
    cases = [
        ("nope", {"vector": vector}, 404), ("checkpoints", {"vector": vector, "k": 9}, 400),
        ("checkpoints", {"vector": vector, "k": 0}, 400), ("checkpoints", {"vector": [0.1] * 5}, 400),
        ("checkpoints", {"vector": []}, 400), ("checkpoints", {"like": "missing-id"}, 404),
        ("checkpoints", {"text": "hello"}, 400), ("contextd_default", {"vector": vector, "k": 1}, 400),
    ]
    for name, body, status in cases:
        with pytest.raises(QueryError) as err:
            ask(index, name, body)
        assert err.value.status == status, (name, body, err.value.message)
    assert ask(index, "contextd_default", {"vector": vector}) == [[]]


def test_refresh_paths_add_change_remove_and_damage(plain_store):
    index = StoreIndex(plain_store).build()
    before = index.collection("checkpoints").document_count
    vector = np.zeros(384, dtype=np.float32)
    vector[7] = 1.0
    added = write_doc(plain_store, "checkpoints", "fresh-doc", vector, content="fresh")
    index.refresh_paths([added])
    (top,) = ask(index, "checkpoints", {"vector": vector.tolist(), "k": 1})
    assert top[0]["id"] == "fresh-doc" and top[0]["content"] == "fresh"
    assert index.collection("checkpoints").document_count == before + 1

    write_doc(plain_store, "checkpoints", "fresh-doc", vector, content="changed")
    index.refresh_paths([added])
    (top,) = ask(index, "checkpoints", {"vector": vector.tolist(), "k": 1})
    assert top[0]["content"] == "changed"

    added.write_bytes(added.read_bytes()[:50])  # damaged: truncated
    index.refresh_paths([added])
    collection = index.collection("checkpoints")
    assert collection.row_of("fresh-doc") is None
    assert [p.kind for p in collection.problems] == ["undecodable"]
    assert not index.clean

    added.unlink()
    index.refresh_paths([added])
    assert index.collection("checkpoints").problems == ()
    assert index.collection("checkpoints").document_count == before
    assert index.clean


def test_refresh_collection_added_and_removed(plain_store, tmp_path):
    index = StoreIndex(plain_store).build()
    folder = plain_store / collection_dir_name("checkpoints")
    moved = tmp_path / "away"
    shutil.move(folder, moved)
    index.refresh_paths([folder])
    assert "checkpoints" not in index.collections()
    shutil.move(moved, folder)
    index.refresh_all()
    assert index.collection("checkpoints").document_count == 8


def test_missing_metadata_indexes_folder_as_damaged_under_catalog_name(plain_store):
    folder = plain_store / collection_dir_name("webapp_memories")
    (folder / "00000000.gob").unlink()
    index = StoreIndex(plain_store, known_names=["webapp_memories"]).build()
    collection = index.collection("webapp_memories")
    assert collection.damaged and "missing" in collection.damage
    assert collection.document_count == 40
    anonymous = StoreIndex(plain_store).build()
    assert anonymous.collection(folder.name).damaged


def test_mixed_dimensions_stay_out_of_the_matrix(plain_store):
    path = write_doc(plain_store, "checkpoints", "short-doc", [1.0, 2.0, 3.0])
    index = StoreIndex(plain_store).build()
    collection = index.collection("checkpoints")
    assert collection.dimension == 384 and collection.indexed == 8
    assert collection.document_count == 9
    assert [(p.file, p.kind) for p in collection.problems] == [(path.name, "dimension-mismatch")]
    with pytest.raises(QueryError):
        ask(index, "checkpoints", {"vector": [1.0, 2.0, 3.0]})


def test_concurrent_queries_during_reindex_see_consistent_answers(plain_store):
    index = StoreIndex(plain_store).build()
    vector = np.zeros(384, dtype=np.float32)
    vector[3] = 1.0
    path = doc_path(plain_store, "webapp_memories", "flip", ".gob")
    errors, answers = [], []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                answer = index.search("webapp_memories", q.parse_request({"vector": vector.tolist(), "k": 3}))
                (results,) = answer.results
                count = answer.collection.document_count
                answers.append((results[0]["id"], count))
                assert len(results) == 3
                assert all(results[i]["similarity"] >= results[i + 1]["similarity"] for i in range(2))
            except Exception as exc:  # noqa: BLE001 - collected for the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for i in range(30):
        if i % 2 == 0:
            write_doc(plain_store, "webapp_memories", "flip", vector, content=f"v{i}")
        else:
            path.unlink()
        index.refresh_paths([path])
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert answers
    assert all(count == 41 for top, count in answers if top == "flip")


def test_hidden_folders_and_files_are_indexed_as_chromem_loads_them(plain_store, chromemh):
    from tests.conftest import chromem_load

    folder = plain_store / collection_dir_name("alice_webapp_codebase")
    folder.rename(plain_store / ".hidden")
    vector = np.zeros(384, dtype=np.float32)
    vector[2] = 1.0
    hidden_doc = plain_store / collection_dir_name("checkpoints") / ".x.gob"
    hidden_doc.write_bytes(encode_document(Document("hidden-doc", {}, vector, "in a hidden file")))
    loaded = chromem_load(chromemh, plain_store)
    assert loaded["ok"]
    index = StoreIndex(plain_store).build()
    assert {name: c.document_count for name, c in index.collections().items()} == \
        {name: c["count"] for name, c in loaded["collections"].items()}
    assert index.collection("alice_webapp_codebase").dir_name == ".hidden"
    (top,) = ask(index, "checkpoints", {"vector": vector.tolist(), "k": 1})
    assert top[0]["id"] == "hidden-doc"
    hidden_doc.unlink()
    index.refresh_paths([hidden_doc, plain_store / ".hidden"])
    assert index.collection("checkpoints").row_of("hidden-doc") is None
    assert index.collection("alice_webapp_codebase").document_count == 30


def test_index_lists_folders_with_the_checks_walker(plain_store, monkeypatch):
    from guardian.store import scan

    read = []
    original = scan.FolderListing.read.__func__

    def recording(cls, path):
        read.append(os.path.basename(path))
        return original(cls, path)

    monkeypatch.setattr(scan.FolderListing, "read", classmethod(recording))
    StoreIndex(plain_store).build()
    assert sorted(read) == sorted(p.name for p in plain_store.iterdir())


def test_a_cold_build_starts_its_decode_workers_before_listing_and_answers_the_same(
        any_store, queries, tmp_path, monkeypatch):
    from guardian.index import decode, store_index
    from guardian.store import scan

    events = []
    original_pool, original_read = decode.DecodePool.__init__, scan.FolderListing.read.__func__

    def pool_started(self, workers):
        events.append("pool")
        original_pool(self, workers)
        assert self.usable   # forkserver workers run here

    def listed(cls, path):
        events.append("list")
        return original_read(cls, path)

    monkeypatch.setattr(decode.DecodePool, "__init__", pool_started)
    monkeypatch.setattr(scan.FolderListing, "read", classmethod(listed))
    monkeypatch.setattr(decode, "PARALLEL_MIN_FILES", 2)      # the fixture's folders decode in workers...
    monkeypatch.setattr(decode, "CHUNK_FILES", 2)
    monkeypatch.setattr(store_index, "PARALLEL_MIN_FILES", 2)   # ...and every uncached folder looks large
    monkeypatch.setattr(store_index, "DIR_BYTES_PER_ENTRY", 1)
    cache = tmp_path / "cache"
    index = StoreIndex(any_store, cache_dir=cache, workers=2).build()
    assert events[0] == "pool" and events.count("pool") == 1 and "list" in events
    alone = StoreIndex(any_store, workers=1).build()
    for name, cases in queries.items():
        for case in cases:
            assert ask(index, name, dict(case["query"], k=5)) == ask(alone, name, dict(case["query"], k=5))
            (results,) = ask(index, name, dict(case["query"], k=5))
            assert [r["id"] for r in results] == [r["id"] for r in case["top5"]]
    assert events.count("pool") == 1                            # workers=1: no pool
    index.save_cache()
    events.clear()
    warm = StoreIndex(any_store, cache_dir=cache, workers=2).build()
    assert warm.cached_collections == len(index.collections()) and "pool" not in events   # all cached: none


def test_a_fresh_build_keeps_the_last_file_of_a_duplicated_id_as_chromem_does(plain_store):
    vector = np.zeros(384, dtype=np.float32)
    vector[5] = 1.0
    folder = plain_store / collection_dir_name("webapp_memories")
    for name, content in (("0000000a.gob", "loser"), ("ffffffff.gob", "winner")):
        write_doc(plain_store, "webapp_memories", "twin", vector, content=content).rename(folder / name)
    index = StoreIndex(plain_store, workers=1).build()
    (results,) = ask(index, "webapp_memories", {"vector": vector.tolist(), "k": 1})
    assert results[0]["id"] == "twin" and results[0]["content"] == "winner"
    problems = [p for p in index.collection("webapp_memories").problems if p.kind == "duplicate-id"]
    assert [(p.file, "ffffffff.gob" in p.detail) for p in problems] == [("0000000a.gob", True)]
    clean = StoreIndex(plain_store.parent / "clean", workers=1)
    shutil.copytree(plain_store, clean.root)
    for name in ("0000000a.gob", "ffffffff.gob"):
        (clean.root / folder.name / name).unlink()
    assert not [p for c in clean.build().collections().values() for p in c.problems if p.kind == "duplicate-id"]


def test_queries_find_collections_as_the_latest_snapshot_names_them(plain_store, tmp_path):
    """The name lookup a query makes is kept per snapshot: a removed, returned or changed collection
    is seen by the next query, never a stale index."""
    index = StoreIndex(plain_store).build()
    vector = [0.1] * index.collection("checkpoints").dimension
    assert len(ask(index, "checkpoints", {"vector": vector, "k": 3})[0]) == 3
    folder = plain_store / collection_dir_name("checkpoints")
    moved = tmp_path / "away"
    shutil.move(folder, moved)
    index.refresh_paths([folder])
    with pytest.raises(QueryError) as err:
        ask(index, "checkpoints", {"vector": vector, "k": 3})
    assert err.value.status == 404
    shutil.move(moved, folder)
    index.refresh_all()
    before = index.collection("checkpoints")
    assert len(ask(index, "checkpoints", {"vector": vector, "k": 3})[0]) == 3
    write_doc(plain_store, "checkpoints", "added-doc", vector, content="the added one")
    index.refresh_paths([doc_path(plain_store, "checkpoints", "added-doc", ".gob")])
    assert index.collection("checkpoints") is not before
    assert ask(index, "checkpoints", {"vector": vector, "k": 1})[0][0]["id"] == "added-doc"


def folder_reads(monkeypatch) -> list[str]:
    """The folders FolderListing.read lists from now on (the real walker runs; only the names are noted)."""
    from guardian.store import scan

    read = []
    original = scan.FolderListing.read.__func__

    def recording(cls, path, *args, **kwargs):
        read.append(os.path.basename(path))
        return original(cls, path, *args, **kwargs)

    monkeypatch.setattr(scan.FolderListing, "read", classmethod(recording))
    return read


@pytest.mark.parametrize("cached", [False, True])
def test_a_build_on_a_scans_listings_lists_nothing_and_answers_the_same(any_store, queries, tmp_path, cached,
                                                                       monkeypatch):
    """`guardian run` lists the store once at start: the pre-flight's scan hands its listings to the
    index's first build, cold (nothing cached) or warm alike."""
    from guardian.store.scan import scan_store
    from tests.index.test_cache import all_answers

    compress = detect_compress(any_store)
    cache_dir = tmp_path / "cache"
    want = all_answers(StoreIndex(any_store, compress, cache_dir=cache_dir).build(), queries)
    if cached:
        StoreIndex(any_store, compress, cache_dir=cache_dir).build().save_cache()
    listings = scan_store(any_store, compress, keep_listings=True).take_listings()
    read = folder_reads(monkeypatch)
    index = StoreIndex(any_store, None, cache_dir=cache_dir).build(listings)
    assert read == []                                   # not one folder listed again
    assert index.compress is compress                   # detected from the same listings
    assert index.cached_collections == (5 if cached else 0)
    assert all_answers(index, queries) == want


def test_a_build_on_listings_is_the_store_as_listed_and_catches_up_on_the_paths_it_is_told(plain_store):
    """What changed between the listing and the build is not in the index until the watcher's paths
    are refreshed (which is why the runtime starts its watcher before the pre-flight's listing)."""
    from guardian.store.scan import scan_store

    listings = scan_store(plain_store, False, keep_listings=True).take_listings()
    added = write_doc(plain_store, "checkpoints", "after-the-listing", np.ones(384))
    index = StoreIndex(plain_store, False).build(listings)
    assert index.collection("checkpoints").row_of("after-the-listing") is None
    index.refresh_paths([added])
    assert index.collection("checkpoints").row_of("after-the-listing") is not None
    assert sorted(index.collection("checkpoints").rows.ids) == sorted(
        StoreIndex(plain_store, False).build().collection("checkpoints").rows.ids)
