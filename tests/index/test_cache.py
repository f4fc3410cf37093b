"""The index cache (guardian/index/cache.py): mapped rows, reuse, damage, older formats, atomic writes."""

from __future__ import annotations

import marshal
import mmap
import os

import numpy as np
import pytest

from guardian.format.chromem import collection_dir_name
from guardian.index import cache as cache_mod
from guardian.index import query as q
from guardian.index.cache import CACHE_VERSION, IndexCache
from guardian.index.store_index import StoreIndex
from tests.index.test_store_index import ask, doc_path, write_doc


def tree(root):
    """Every path under root with its bytes and stat key (to prove nothing changed)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            data = open(path, "rb").read() if os.path.isfile(path) else b""
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, data)
    return out


def mapped(array_or_buffer) -> bool:
    """Whether an array (or buffer) is backed by a memory-mapped file."""
    obj = array_or_buffer
    while obj is not None:
        if isinstance(obj, mmap.mmap):
            return True
        obj = getattr(obj, "base", None) if isinstance(obj, np.ndarray) else getattr(obj, "obj", None)
    return False


def saved(store, cache_dir):
    index = StoreIndex(store, cache_dir=cache_dir).build()
    assert index.save_cache() == len(index.collections())
    return index


def all_answers(index, queries):
    out = []
    for name, cases in queries.items():
        for case in cases:
            for k in (1, 5):
                (results,) = ask(index, name, dict(case["query"], k=k))
                out.append([(r["id"], round(r["similarity"], 6), r["content"], r["metadata"]) for r in results])
    return out


def test_cache_makes_restart_reuse_and_notices_changes(plain_store, tmp_path):
    cache_dir = tmp_path / "cache"
    first = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert first.save_cache() == 5
    assert first.save_cache() == 0  # nothing dirty
    vector = np.ones(384, dtype=np.float32)
    write_doc(plain_store, "checkpoints", "while-down", vector)
    (plain_store / collection_dir_name("remediations_org_alice") / sorted(
        p.name for p in (plain_store / collection_dir_name("remediations_org_alice")).iterdir()
        if p.name != "00000000.gob")[0]).unlink()
    second = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert second.cached_collections == 5
    assert second.collection("checkpoints").row_of("while-down") is not None
    assert second.collection("remediations_org_alice").document_count == 11
    fresh = StoreIndex(plain_store).build()
    for name, got in second.collections().items():
        want = fresh.collections()[name]
        assert sorted(got.rows.ids) == sorted(want.rows.ids)
        order = [want.row_of(i) for i in got.rows.ids]
        assert np.array_equal(got.rows.matrix, want.rows.matrix[order])


def test_warm_index_is_mapped_and_answers_as_the_decoded_one(any_store, queries, tmp_path):
    cache_dir = tmp_path / "cache"
    decoded = saved(any_store, cache_dir)
    warm = StoreIndex(any_store, cache_dir=cache_dir).build()
    assert warm.cached_collections == 5
    for index in (warm, decoded):  # save_cache swapped the decoded rows for the mapped file too
        for collection in index.collections().values():
            base = collection.rows.base
            assert collection.rows.compact and mapped(base.matrix)
            assert isinstance(base.contents.buffer, mmap.mmap) and isinstance(base.metadatas.buffer, mmap.mmap)
    assert all_answers(warm, queries) == all_answers(StoreIndex(any_store).build(), queries)


def test_filters_on_the_mapped_rows_match_the_pure_rule(plain_store, tmp_path):
    cache_dir = tmp_path / "cache"
    saved(plain_store, cache_dir)
    collection = StoreIndex(plain_store, cache_dir=cache_dir).build().collection("webapp_memories")
    metadatas, contents = list(collection.rows.metadatas), list(collection.rows.contents)
    keys = sorted({key for m in metadatas for key in m})
    words = sorted({word for text in contents for word in text.split()})[:12] + ["", "zzz-not-there"]
    cases = [q.Filters(where={key: metadatas[i % len(metadatas)].get(key, "")}) for i, key in enumerate(keys)]
    cases += [q.Filters(where_document={"$contains": w}) for w in words]
    cases += [q.Filters(where_document={"$not_contains": w}) for w in words]
    cases += [q.Filters(where={keys[0]: "no-such-value"}), q.Filters(where={"no-such-key": ""})]
    for filters in cases:
        want = q.matching_rows(metadatas, contents, filters)
        assert collection.matching(filters).tolist() == want.tolist(), filters


def test_live_updates_after_mapping_keep_the_base_mapped(plain_store, tmp_path, contents):
    cache_dir = tmp_path / "cache"
    saved(plain_store, cache_dir)
    index = StoreIndex(plain_store, cache_dir=cache_dir).build()
    before = index.collection("webapp_memories")
    vector = np.zeros(384, dtype=np.float32)
    vector[5] = 1.0
    added = write_doc(plain_store, "webapp_memories", "live-doc", vector, content="live", metadata={"k": "v"})
    changed_id = next(c for c in contents["collections"] if c["name"] == "webapp_memories")["documents"][0]["id"]
    changed = write_doc(plain_store, "webapp_memories", changed_id, vector, content="rewritten")
    removed_id = next(c for c in contents["collections"] if c["name"] == "webapp_memories")["documents"][1]["id"]
    removed = doc_path(plain_store, "webapp_memories", removed_id, ".gob")
    removed.unlink()
    index.refresh_paths([added, changed, removed])
    after = index.collection("webapp_memories")
    assert after.rows.base is before.rows.base and mapped(after.rows.base.matrix)  # never copied
    assert not after.rows.compact and len(after.rows.extra) == 2
    assert after.document_count == before.document_count  # one added, one removed, one rewritten
    assert after.row_of(removed_id) is None
    (top,) = ask(index, "webapp_memories", {"vector": vector.tolist(), "k": 2})
    assert {r["id"] for r in top} == {"live-doc", changed_id}
    assert {r["content"] for r in top} == {"live", "rewritten"}
    (filtered,) = ask(index, "webapp_memories", {"vector": vector.tolist(), "k": 3, "where": {"k": "v"}})
    assert [r["id"] for r in filtered] == ["live-doc"]
    (like,) = ask(index, "webapp_memories", {"like": "live-doc", "k": 1})
    assert like[0]["id"] == "live-doc"
    fresh = StoreIndex(plain_store).build().collection("webapp_memories")
    assert sorted(after.rows.ids) == sorted(fresh.rows.ids)

    answer = ask(index, "webapp_memories", {"vector": vector.tolist(), "k": 5})
    assert index.save_cache() == 1  # the overlay is written out and mapped in its place
    compacted = index.collection("webapp_memories")
    assert compacted.rows.compact and mapped(compacted.rows.base.matrix)
    assert list(compacted.rows.ids) == list(after.rows.ids)  # same rows, same order (ties stay put)
    assert np.array_equal(compacted.rows.matrix, after.rows.matrix)
    assert ask(index, "webapp_memories", {"vector": vector.tolist(), "k": 5}) == answer
    restarted = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert list(restarted.collection("webapp_memories").rows.ids) == list(after.rows.ids)


def corrupt_rows_files(cache_dir, how):
    files = sorted(cache_dir.glob("*.rows"))
    assert files
    for path in files:
        data = bytearray(path.read_bytes())
        if how == "truncated":
            data = data[: len(data) // 2]
        elif how == "garbage":
            data = bytearray(b"garbage")
        else:  # same size, the offsets of the first column overwritten (a torn or flipped block)
            manifest = marshal.loads((cache_dir / (path.name.split(".")[0] + ".manifest")).read_bytes())
            start, nbytes = manifest["sections"]["ids.offsets"]
            data[start:start + nbytes] = os.urandom(nbytes)
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "garbage", "flipped"])
def test_damaged_rows_file_is_ignored_and_rewritten(plain_store, tmp_path, how):
    cache_dir = tmp_path / "cache"
    saved(plain_store, cache_dir)
    corrupt_rows_files(cache_dir, how)
    index = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert index.cached_collections == 0
    assert index.collection("webapp_memories").document_count == 40
    assert index.save_cache() == 5  # decoded again, so written again
    again = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert again.cached_collections == 5
    assert again.collection("webapp_memories").document_count == 40


def test_garbage_cache_manifest_is_ignored(plain_store, tmp_path):
    cache_dir = tmp_path / "cache"
    saved(plain_store, cache_dir)
    manifests = list(cache_dir.glob("*.manifest"))
    assert manifests
    for i, path in enumerate(manifests):
        path.write_bytes([b"", b"\x00garbage", b"\xe9" * 40][i % 3])
    index = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert index.cached_collections == 0
    assert index.collection("checkpoints").document_count == 8


def test_cache_of_an_older_format_is_ignored_and_replaced(plain_store, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    for folder in plain_store.iterdir():  # what cache version 3 wrote: a marshal manifest + an .npy matrix
        np.save(cache_dir / f"{folder.name}.0badc0de.npy", np.zeros((1, 384), np.float32))
        (cache_dir / f"{folder.name}.manifest").write_bytes(marshal.dumps({
            "version": 3, "ext": ".gob", "matrix": f"{folder.name}.0badc0de.npy", "name": "stale",
            "ids": ["x"], "contents": ["x"], "metadatas": [{}], "files": ["x.gob"], "stats": {}, "problems": []}))
    index = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert index.cached_collections == 0
    assert "stale" not in index.collections()
    assert index.save_cache() == 5
    assert not list(cache_dir.glob("*.npy"))  # the old matrices went with the old manifests
    manifest = marshal.loads(next(cache_dir.glob("*.manifest")).read_bytes())
    assert manifest["version"] == CACHE_VERSION
    assert StoreIndex(plain_store, cache_dir=cache_dir).build().cached_collections == 5


def test_cache_lives_in_the_state_dir_and_is_written_atomically(plain_store, tmp_path, monkeypatch):
    cache_dir = tmp_path / "state" / "cache" / "index"
    store_before = tree(plain_store)
    saved(plain_store, cache_dir)
    assert tree(plain_store) == store_before  # nothing written in the store
    names = sorted(p.name for p in cache_dir.iterdir())
    assert all(n.endswith((".rows", ".manifest")) for n in names), names  # no temp file left
    assert all((os.stat(cache_dir / n).st_mode & 0o777) == 0o600 for n in names)
    good = {n: (cache_dir / n).read_bytes() for n in names}

    # a save that fails half-way through the rows file leaves the previous cache whole and usable
    write_doc(plain_store, "checkpoints", "another", np.ones(384, np.float32))
    index = StoreIndex(plain_store, cache_dir=cache_dir).build()
    written = []

    def failing_write_all(fd, data):
        written.append(len(data))
        if len(written) > 3:
            raise OSError(28, "No space left on device")
        os.write(fd, data)

    monkeypatch.setattr(cache_mod, "write_all", failing_write_all)
    assert index.save_cache() == 0  # logged as index_cache_not_written
    monkeypatch.undo()
    assert {n: (cache_dir / n).read_bytes() for n in sorted(p.name for p in cache_dir.iterdir())} == good
    restarted = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert restarted.cached_collections == 5
    assert restarted.collection("checkpoints").row_of("another") is not None  # noticed as a change


def test_cache_save_without_a_cache_dir_and_forget(plain_store, tmp_path):
    assert StoreIndex(plain_store).build().save_cache() == 0
    cache_dir = tmp_path / "cache"
    saved(plain_store, cache_dir)
    dir_name = collection_dir_name("checkpoints")
    IndexCache(cache_dir, ".gob").forget(dir_name)
    assert not list(cache_dir.glob(f"{dir_name}.*"))
    assert IndexCache(cache_dir, ".gob").load(dir_name) is None
    assert IndexCache(cache_dir, ".gob.gz").load(collection_dir_name("webapp_memories")) is None  # other ext


def test_a_few_changed_rows_wait_in_memory_until_enough_change_or_a_forced_save(plain_store, tmp_path, monkeypatch):
    from guardian.index import store_index

    cache_dir = tmp_path / "cache"
    index = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert index.save_cache(force=False) == 5  # freshly decoded: written (and mapped) at once
    files = {p.name: p.read_bytes() for p in cache_dir.iterdir()}
    added = write_doc(plain_store, "checkpoints", "one-more", np.ones(384, np.float32))
    index.refresh_paths([added])
    assert index.save_cache(force=False) == 0  # one changed row: not worth rewriting the file
    assert {p.name: p.read_bytes() for p in cache_dir.iterdir()} == files
    assert index.collection("checkpoints").row_of("one-more") is not None
    monkeypatch.setattr(store_index, "COMPACT_ROWS", 1)
    assert index.save_cache(force=False) == 1  # enough now
    assert index.collection("checkpoints").rows.compact
    monkeypatch.setattr(store_index, "COMPACT_ROWS", 1000)
    index.refresh_paths([write_doc(plain_store, "checkpoints", "and-another", np.ones(384, np.float32))])
    assert index.save_cache(force=False) == 0
    assert index.save_cache() == 1  # forced (as on stop): every change is written
    restarted = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert restarted.collection("checkpoints").row_of("and-another") is not None


def test_a_manifest_without_the_crc_of_an_offsets_section_is_not_trusted(plain_store, tmp_path):
    """Loading no longer walks the offsets to see they never decrease: their CRC stands for it, so a
    manifest that does not carry one for every offsets section (and the stat table) is unusable."""
    cache_dir = tmp_path / "cache"
    saved(plain_store, cache_dir)
    for path in cache_dir.glob("*.manifest"):
        manifest = marshal.loads(path.read_bytes())
        assert {n for n in manifest["sections"] if n.endswith(".offsets")} | {"stat_table"} <= set(manifest["crcs"])
        del manifest["crcs"]["contents.offsets"]
        path.write_bytes(marshal.dumps(manifest))
    index = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert index.cached_collections == 0
    assert index.collection("webapp_memories").document_count == 40


def test_a_folder_listed_differently_with_the_same_files_gets_its_manifest_rewritten_only(
        plain_store, tmp_path, queries):
    """A manifest whose listing digest no longer matches (digests of an older rule, another directory
    order) while every file's stat does: the rows are reused as they are, and the next save rewrites
    the manifest alone with the new digest, so later restarts skip the file-by-file comparison."""
    from guardian.store.scan import FolderListing

    cache_dir = tmp_path / "cache"
    want = all_answers(saved(plain_store, cache_dir), queries)
    rows_files = {p.name: os.stat(p).st_ino for p in cache_dir.glob("*.rows")}
    for path in cache_dir.glob("*.manifest"):
        manifest = marshal.loads(path.read_bytes())
        manifest["listing_digest"] = "digest-of-an-older-rule"
        path.write_bytes(marshal.dumps(manifest))
    index = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert index.cached_collections == 5
    assert all_answers(index, queries) == want
    assert index.save_cache() == 0   # no rows file written...
    assert {p.name: os.stat(p).st_ino for p in cache_dir.glob("*.rows")} == rows_files
    for path in cache_dir.glob("*.manifest"):   # ...but every manifest now holds the listing's digest
        dir_name = path.name.split(".")[0]
        manifest = marshal.loads(path.read_bytes())
        assert manifest["listing_digest"] == FolderListing.read(str(plain_store / dir_name)).digest()
    again = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert again.cached_collections == 5 and all_answers(again, queries) == want
    assert again.save_cache() == 0


def test_a_relisted_collection_that_changed_before_the_save_is_written_whole(plain_store, tmp_path):
    cache_dir = tmp_path / "cache"
    saved(plain_store, cache_dir)
    dir_name = collection_dir_name("checkpoints")
    path = cache_dir / f"{dir_name}.manifest"
    manifest = marshal.loads(path.read_bytes())
    manifest["listing_digest"] = "stale"
    path.write_bytes(marshal.dumps(manifest))
    index = StoreIndex(plain_store, cache_dir=cache_dir).build()
    index.refresh_paths([write_doc(plain_store, "checkpoints", "late", np.ones(384, np.float32))])
    assert index.save_cache() == 1   # the changed collection as a whole, digest and all
    again = StoreIndex(plain_store, cache_dir=cache_dir).build()
    assert again.collection("checkpoints").row_of("late") is not None
    # a live update leaves no listing digest (it stat'ed one file, not the folder): this restart
    # compared the folder file by file, and its save writes the digest it listed, manifest only
    assert again.save_cache() == 0
    assert marshal.loads(path.read_bytes())["listing_digest"] == again.collection("checkpoints").listing_digest != ""


def test_the_filter_key_columns_are_kept_mapped_and_match_the_metadata(plain_store, tmp_path):
    """A session mapping the cache filters by tenant and project without decoding every row's
    metadata: the cache keeps those columns, and they say what the metadata says, after live
    updates (rows dropped, new values in the overlay) and a save too."""
    cache_dir = tmp_path / "cache"
    vector = np.ones(384, dtype=np.float32)
    for i in range(6):
        write_doc(plain_store, "webapp_memories", f"p{i}", vector,
                  metadata={"tenant_id": f"t{i % 2}", "project_id": f"proj-{i % 3}"} if i else {})
    saved(plain_store, cache_dir)
    index = StoreIndex(plain_store, cache_dir=cache_dir).build()

    def check(collection):
        metadatas, contents = list(collection.rows.metadatas), list(collection.rows.contents)
        for key in cache_mod.KEY_COLUMNS:
            for value in sorted({m.get(key, "") for m in metadatas}) + ["not-there"]:
                want = q.matching_rows(metadatas, contents, q.Filters(where={key: value}))
                assert collection.matching(q.Filters(where={key: value})).tolist() == want.tolist(), (key, value)

    collection = index.collection("webapp_memories")
    codes, values = collection.rows.base.column("project_id")  # mapped: from the cache, no pass over the rows
    assert mapped(codes) and {"proj-0", "proj-1", "proj-2", ""} <= set(values)
    check(collection)
    write_doc(plain_store, "webapp_memories", "p-new", vector, metadata={"tenant_id": "t9", "project_id": "proj-9"})
    gone = doc_path(plain_store, "webapp_memories", "p1", ".gob")
    gone.unlink()
    index.refresh_paths([doc_path(plain_store, "webapp_memories", "p-new", ".gob"), gone])
    check(index.collection("webapp_memories"))
    assert index.save_cache() == 1  # the overlay is written out with the base
    restarted = StoreIndex(plain_store, cache_dir=cache_dir).build().collection("webapp_memories")
    codes, values = restarted.rows.base.column("project_id")
    assert mapped(codes) and "proj-9" in values
    check(restarted)
