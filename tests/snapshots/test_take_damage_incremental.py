"""Damage is never the newest good copy; incremental snapshots read only what changed."""

from __future__ import annotations

import os
import shutil

from guardian.format.chromem import Document, encode_collection, encode_document
from guardian.snapshots.manifest import FLAG_DAMAGED
from guardian.snapshots.repository import Repository
from guardian.restoring.pipeline import Restore
from guardian.restoring.request import RestoreRequest
from guardian.snapshots.take import take_snapshot
from guardian.store.scan import scan_store

from tests.snapshots.conftest import age_files, doc_bytes, tree_bytes


def rows_of(paths, snapshot_id):
    return {e.path: e for e in Repository(paths.snapshots).read_manifest(snapshot_id).files}


def comparable(entries):
    """What a snapshot says about each file (inode/mtime aside, which a re-read does not change)."""
    return {p: (e.size, e.hash, e.flags & FLAG_DAMAGED) for p, e in entries.items()}


def test_an_emptied_document_keeps_its_previous_good_copy(plain_paths, clock):
    age_files(plain_paths.store)
    original = tree_bytes(plain_paths.store)
    first = take_snapshot(plain_paths, clock=clock)
    doc = next(plain_paths.store.glob("*/1*.gob"))
    rel = f"{doc.parent.name}/{doc.name}"
    good = rows_of(plain_paths, first.id)[rel].hash
    doc.write_bytes(b"")
    clock.advance(minutes=5)
    second = take_snapshot(plain_paths, clock=clock)
    assert second.damaged == [(rel, "empty")]
    entry = rows_of(plain_paths, second.id)[rel]
    assert entry.damaged and entry.hash == good
    assert Restore.of_store(plain_paths).run().snapshot_id == second.id
    assert tree_bytes(plain_paths.store) == original
    assert scan_store(plain_paths.store, None).loadable


def test_a_cut_metadata_file_is_flagged_and_a_never_good_file_has_no_content(plain_paths, clock):
    take_snapshot(plain_paths, clock=clock)
    meta = next(plain_paths.store.glob("*/00000000.gob"))
    meta.write_bytes(meta.read_bytes()[:5])
    fresh = meta.parent / "feedf00d.gob"
    fresh.write_bytes(doc_bytes("fresh")[:9])  # cut in the middle of its first write
    clock.advance(minutes=5)
    result = take_snapshot(plain_paths, clock=clock)
    assert {p for p, _ in result.damaged} == {f"{meta.parent.name}/{meta.name}", f"{meta.parent.name}/{fresh.name}"}
    rows = rows_of(plain_paths, result.id)
    assert rows[f"{meta.parent.name}/{meta.name}"].hash is not None
    assert rows[f"{meta.parent.name}/{fresh.name}"].hash is None and rows[f"{meta.parent.name}/{fresh.name}"].damaged
    restored = Restore.of_store(plain_paths).run()
    assert restored.loadable is False  # the cut new file has no good copy anywhere: left for the repair
    kinds = {a.path: a.kind for a in restored.plan.actions}
    assert kinds[f"{meta.parent.name}/{fresh.name}"] == "skip"
    assert scan_store(plain_paths.store, None).collections  # metadata came back


def test_restore_leaves_out_damaged_copies_of_old_snapshots_unless_asked(plain_paths, clock):
    doc = next(plain_paths.store.glob("*/1*.gob"))
    take_snapshot(plain_paths, clock=clock)
    repo = Repository(plain_paths.snapshots)
    rel = f"{doc.parent.name}/{doc.name}"
    # a snapshot written before damage was flagged: its blob for the file is garbage
    manifest = repo.read_manifest(repo.list_ids()[-1])
    bad = b"\x07garbage"
    digest = repo.put_blob(bad) and __import__("hashlib").sha256(bad).hexdigest()
    repo.sync()
    files = [e if e.path != rel else type(e)(e.path, len(bad), e.mode, e.mtime_ns, e.inode, digest, 0)
             for e in manifest.files]
    manifest.files, manifest.files_dict = files, None
    from guardian.snapshots.repository import new_snapshot_id

    manifest.id = new_snapshot_id(clock.advance(minutes=1))  # newer than the real one
    repo.write_manifest(manifest)
    current = doc.read_bytes()
    doc.write_bytes(doc_bytes("newer"))
    result = Restore.of_store(plain_paths).run()
    assert result.refused_damaged == [{"path": rel, "reason": result.refused_damaged[0]["reason"]}]
    assert doc.read_bytes() == doc_bytes("newer")  # left as it is
    Restore.of_store(plain_paths, RestoreRequest(allow_damaged=True)).run()
    assert doc.read_bytes() == bad
    assert current != bad


def test_incremental_reads_only_the_changed_files_and_equals_a_full_walk(plain_paths, clock):
    store = plain_paths.store
    age_files(store)
    full = take_snapshot(plain_paths, clock=clock)
    folder = next(p for p in sorted(store.iterdir()) if p.is_dir())
    docs = sorted(folder.glob("[1-9a-f]*.gob"))
    docs[0].write_bytes(doc_bytes("rewritten"))
    docs[1].unlink()
    new = folder / "abcdef01.gob"
    new.write_bytes(doc_bytes("added"))
    collection = store / "0123abcd"
    collection.mkdir()
    (collection / "00000000.gob").write_bytes(encode_collection("brand_new"))
    (collection / "11112222.gob").write_bytes(encode_document(Document(id="x", content="y")))
    gone = next(p for p in sorted(store.iterdir()) if p.is_dir() and p != folder and p != collection)
    shutil.rmtree(gone)
    changed = {f"{folder.name}/{docs[0].name}", f"{folder.name}/{docs[1].name}", f"{folder.name}/{new.name}",
               collection.name, gone.name}
    clock.advance(minutes=1)
    incremental = take_snapshot(plain_paths, clock=clock, changed=changed, baseline=full.baseline)
    assert incremental.incremental and incremental.read_files == 4  # the rewrite, the new one, the new folder's two
    clock.advance(minutes=1)
    walked = take_snapshot(plain_paths, clock=clock)
    assert comparable(rows_of(plain_paths, incremental.id)) == comparable(rows_of(plain_paths, walked.id))
    repo = Repository(plain_paths.snapshots)
    one, two = repo.read_header(incremental.id), repo.read_header(walked.id)
    assert one.dirs == two.dirs and one.collections == two.collections
    assert "brand_new" in {c.name for c in one.collections}


def test_incremental_without_a_previous_snapshot_is_a_full_walk(plain_paths):
    result = take_snapshot(plain_paths, changed={"nothing/here.gob"})
    assert not result.incremental and result.files == len(tree_bytes(plain_paths.store))


def test_incremental_with_a_stale_baseline_reads_the_newest_manifest(plain_paths, clock):
    first = take_snapshot(plain_paths, clock=clock)
    doc = next(plain_paths.store.glob("*/1*.gob"))
    doc.write_bytes(doc_bytes("v2"))
    clock.advance(minutes=1)
    take_snapshot(plain_paths, clock=clock)  # someone else (`guardian snapshot`) took one meanwhile
    other = next(p for p in plain_paths.store.glob("*/2*.gob"))
    other.write_bytes(doc_bytes("v3"))
    clock.advance(minutes=1)
    rel = f"{other.parent.name}/{other.name}"
    third = take_snapshot(plain_paths, clock=clock, changed={rel}, baseline=first.baseline)
    rows = rows_of(plain_paths, third.id)
    blob = Repository(plain_paths.snapshots).read_blob
    assert blob(rows[f"{doc.parent.name}/{doc.name}"].hash) == doc_bytes("v2")
    assert blob(rows[rel].hash) == doc_bytes("v3")
    os.utime(other)


def test_garbage_collection_over_incremental_snapshots_sharing_a_base_list(tmp_path, state_dir, clock):
    from guardian.local.paths import StatePaths
    from guardian.snapshots.prune import forget_and_prune
    from guardian.snapshots.verify import verify_repository

    store = tmp_path / "big"
    (store / "c").mkdir(parents=True)
    (store / "c" / "00000000.gob").write_bytes(encode_collection("big"))
    for i in range(1, 601):
        (store / "c" / f"{i:08x}.gob").write_bytes(doc_bytes(f"doc {i}"))
    age_files(store)
    paths = StatePaths.for_store(store, state_dir)
    result = take_snapshot(paths, clock=clock)
    repo = Repository(paths.snapshots)
    for version in range(3):
        (store / "c" / "00000001.gob").write_bytes(doc_bytes(f"v{version}"))
        clock.advance(seconds=5)
        result = take_snapshot(paths, clock=clock, changed={"c/00000001.gob", f"c/{700 + version:08x}.gob"},
                               baseline=result.baseline)
        assert result.read_files == 1  # the rewrite; the other path does not exist
        assert [e.row() for e in repo.read_manifest(result.id).files] == result.baseline.rows  # as written
    assert len({repo.read_header(i).files_dict for i in repo.list_ids()}) == 1  # one base list for all
    pruned = forget_and_prune(paths, keep_last=1)
    # v0 and v1 go; the original stays while the base list (which names it) is in use: a safe superset
    assert pruned.blobs_removed == 2
    assert verify_repository(repo).ok
    (store / "c" / "00000001.gob").write_bytes(b"")
    Restore.of_store(paths).run()
    assert (store / "c" / "00000001.gob").read_bytes() == doc_bytes("v2")
