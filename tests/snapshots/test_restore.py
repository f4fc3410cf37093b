import os
from datetime import timedelta

import pytest

from guardian.errors import Refused, RestoreError
from guardian.local.fsutil import TEMP_PREFIX
from guardian.local.quarantine import Quarantine
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore import restore_store
from guardian.snapshots.take import take_snapshot

from tests.snapshots.conftest import damage_blob, tree_bytes


def damage(store):
    docs = sorted(p for p in store.glob("*/*") if p.name.startswith("0") is False)
    docs[0].write_bytes(docs[0].read_bytes()[:10])           # truncated
    docs[1].unlink()                                         # deleted
    next(store.glob("*/00000000.gob*")).write_bytes(b"junk")  # garbage metadata
    (store / "stray").mkdir()
    (store / "stray" / "x.gob").write_bytes(b"x")           # a folder the snapshot lacks
    (docs[2].parent / "extra.gob").write_bytes(b"extra")     # a file the snapshot lacks


def test_round_trip_is_byte_identical_and_loadable(store_paths, clock):
    before = tree_bytes(store_paths.store)
    take_snapshot(store_paths, clock=clock)
    damage(store_paths.store)
    result = restore_store(store_paths, None)
    assert tree_bytes(store_paths.store) == before
    assert result.loadable is True
    counts = result.plan.counts()
    assert counts["write"] == 1 and counts["replace"] == 2 and counts["move_aside"] == 2
    # nothing was deleted: replaced and moved-aside things are in quarantine
    entries = Quarantine(store_paths).list()
    assert {e.original_path for e in entries} >= {"stray"}
    assert all(os.path.lexists(e.payload_path) for e in entries)
    assert len(entries) == len(result.quarantined) == 4


def test_at_between_two_snapshots_picks_the_earlier(plain_paths, clock):
    doc = next(plain_paths.store.glob("*/1*.gob"))
    original = doc.read_bytes()
    first = take_snapshot(plain_paths, clock=clock)
    between = clock.advance(minutes=30)
    clock.advance(minutes=30)
    doc.write_bytes(original[:-1] + b"\x00")
    second = take_snapshot(plain_paths, clock=clock)
    assert first.id < second.id
    doc.write_bytes(b"latest")
    result = restore_store(plain_paths, between)
    assert result.snapshot_id == first.id and doc.read_bytes() == original
    result = restore_store(plain_paths, None)
    assert result.snapshot_id == second.id and doc.read_bytes() == original[:-1] + b"\x00"


def test_refuses_time_before_first_snapshot(plain_paths, clock):
    take_snapshot(plain_paths, clock=clock)
    with pytest.raises(Refused, match="no snapshot was taken at or before"):
        restore_store(plain_paths, clock.now - timedelta(seconds=1))


def test_refuses_when_no_snapshot(plain_paths):
    with pytest.raises(Refused, match="no snapshots"):
        restore_store(plain_paths, None)


def test_one_collection_only(plain_paths, contents):
    before = tree_bytes(plain_paths.store)
    take_snapshot(plain_paths)
    cols = [c for c in contents["collections"] if c["documents"]]
    target, other = cols[0], cols[1]
    for col in (target, other):
        for doc in (plain_paths.store / col["dir"]).glob("*.gob"):
            doc.write_bytes(b"")
    result = restore_store(plain_paths, None, target["name"])
    after = tree_bytes(plain_paths.store)
    assert result.scope == target["dir"]
    assert {k: v for k, v in after.items() if k.startswith(target["dir"])} == \
        {k: v for k, v in before.items() if k.startswith(target["dir"])}
    assert all(v == b"" for k, v in after.items() if k.startswith(other["dir"] + "/"))
    with pytest.raises(Refused, match="has no collection 'nope'"):
        restore_store(plain_paths, None, "nope")


def test_dry_run_changes_nothing(plain_paths):
    take_snapshot(plain_paths)
    damage(plain_paths.store)
    before = tree_bytes(plain_paths.store)
    result = restore_store(plain_paths, None, dry_run=True)
    assert result.plan.disturbs_store and tree_bytes(plain_paths.store) == before
    assert Quarantine(plain_paths).list() == []


def test_confirmation_refused_leaves_store(plain_paths):
    take_snapshot(plain_paths)
    damage(plain_paths.store)
    before = tree_bytes(plain_paths.store)
    with pytest.raises(Refused, match="cancelled"):
        restore_store(plain_paths, None, confirm=lambda plan: False)
    assert tree_bytes(plain_paths.store) == before


def test_writing_missing_files_needs_no_confirmation(plain_paths):
    take_snapshot(plain_paths)
    next(plain_paths.store.glob("*/1*.gob")).unlink()
    asked = []
    restore_store(plain_paths, None, confirm=lambda plan: asked.append(plan) or False)
    assert asked == []


def test_damaged_blob_refuses_and_leaves_store_unchanged(plain_paths):
    result = take_snapshot(plain_paths)
    repo = Repository(plain_paths.snapshots)
    entry = repo.read_manifest(result.id).files[5]
    damage_blob(repo, entry.hash)
    (plain_paths.store / entry.path).write_bytes(b"damaged")
    (plain_paths.store / "newcol").mkdir()
    before = tree_bytes(plain_paths.store)
    with pytest.raises(RestoreError, match="damaged"):
        restore_store(plain_paths, None)
    assert tree_bytes(plain_paths.store) == before
    assert not any(TEMP_PREFIX in p for p in os.listdir(plain_paths.store / entry.path.split("/")[0]))


def test_damaged_manifest_refuses(plain_paths):
    result = take_snapshot(plain_paths)
    path = Repository(plain_paths.snapshots).manifest_path(result.id)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(RestoreError, match="is damaged"):
        restore_store(plain_paths, None)


def test_never_writes_through_a_symlink(plain_paths, tmp_path):
    take_snapshot(plain_paths)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = next(p for p in plain_paths.store.iterdir() if p.is_dir())
    Quarantine(plain_paths).put(plain_paths.store, victim.name, "test")
    os.symlink(outside, victim)
    restore_store(plain_paths, None)
    assert list(outside.iterdir()) == []
    assert victim.is_dir() and not victim.is_symlink()


def test_leftover_staged_files_are_cleaned(plain_paths):
    take_snapshot(plain_paths)
    folder = next(p for p in plain_paths.store.iterdir() if p.is_dir())
    leftover = folder / f"{TEMP_PREFIX}1234abcd.gob.beef"
    leftover.write_bytes(b"half")
    restore_store(plain_paths, None)
    assert not leftover.exists()


def test_restored_files_keep_mode_and_mtime(plain_paths):
    doc = next(plain_paths.store.glob("*/1*.gob"))
    os.chmod(doc, 0o640)
    info = doc.stat()
    take_snapshot(plain_paths)
    doc.unlink()
    restore_store(plain_paths, None)
    assert doc.stat().st_mode & 0o7777 == 0o640 and doc.stat().st_mtime_ns == info.st_mtime_ns
    # the next snapshot finds the same content: at most the restored file is read again (its
    # inode is new unless the filesystem reused the old number), and nothing new is stored
    after = take_snapshot(plain_paths)
    assert after.read_files <= 1 and after.new_blobs == 0
