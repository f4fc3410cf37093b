import os
import stat

from guardian.local.catalog import Catalog
from guardian.local.fsutil import TEMP_PREFIX
from guardian.snapshots.repository import Repository
from guardian.snapshots.take import read_stable, take_snapshot

from tests.snapshots.conftest import tree_bytes


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_snapshot_stores_every_file(store_paths, contents):
    result = take_snapshot(store_paths)
    repo = Repository(store_paths.snapshots)
    manifest = repo.read_manifest(result.id)
    files = tree_bytes(store_paths.store)
    assert {e.path for e in manifest.files} == set(files)
    for entry in manifest.files:
        assert repo.read_blob(entry.hash) == files[entry.path]
    names = {c.name: c.documents for c in manifest.collections}
    assert names == {c["name"]: len(c["documents"]) for c in contents["collections"]}
    assert result.read_files == len(files) and result.new_blobs >= 1
    assert manifest.compress == any(p.endswith(".gob.gz") for p in files)
    assert set(Catalog(store_paths.catalog_file).names()) == {n for n in names if n}


def test_repository_files_are_private(store_paths):
    result = take_snapshot(store_paths)
    repo = Repository(store_paths.snapshots)
    assert mode_of(repo.manifest_path(result.id)) == 0o600
    pack = repo.blob_location(repo.read_manifest(result.id).files[0].hash)[0]
    assert mode_of(pack) == 0o600
    for folder in (repo.root, repo.packs, repo.manifests, pack.parent):
        assert mode_of(folder) == 0o700


def test_unchanged_store_costs_a_stat_walk(store_paths):
    first = take_snapshot(store_paths)
    second = take_snapshot(store_paths)
    assert second.read_files == 0 and second.new_blobs == 0
    repo = Repository(store_paths.snapshots)
    assert [e.hash for e in repo.read_manifest(first.id).files] == [e.hash for e in repo.read_manifest(second.id).files]


def test_changed_file_is_read_again(store_paths):
    take_snapshot(store_paths)
    doc = sorted(p for p in store_paths.store.rglob("*") if p.is_file())[-1]
    doc.write_bytes(doc.read_bytes() + b"x")
    result = take_snapshot(store_paths)
    assert result.read_files == 1 and result.new_blobs == 1
    entry = {e.path: e for e in Repository(store_paths.snapshots).read_manifest(result.id).files}
    rel = str(doc.relative_to(store_paths.store))
    assert Repository(store_paths.snapshots).read_blob(entry[rel].hash) == doc.read_bytes()


def test_recently_modified_file_is_not_trusted_next_time(plain_paths):
    take_snapshot(plain_paths)
    doc = next(plain_paths.store.glob("*/0*.gob"))
    os.utime(doc)  # now: inside the racy window
    result = take_snapshot(plain_paths)
    again = take_snapshot(plain_paths)
    assert result.read_files == 1 and again.read_files == 1  # re-read while racy


def test_file_changing_while_read_is_marked_and_previous_blob_kept(plain_paths):
    first = take_snapshot(plain_paths)
    victim = sorted(p for p in plain_paths.store.glob("*/*.gob"))[3]
    rel = str(victim.relative_to(plain_paths.store))
    victim.write_bytes(b"changing")

    def reader(path):
        return None if path == str(victim) else read_stable(path)
    result = take_snapshot(plain_paths, reader=reader)
    assert result.unstable == [rel]
    repo = Repository(plain_paths.snapshots)
    old = {e.path: e for e in repo.read_manifest(first.id).files}[rel]
    new = {e.path: e for e in repo.read_manifest(result.id).files}[rel]
    assert new.unstable and new.hash == old.hash
    # a brand-new file that never settles has no content at all (never a torn copy)
    (plain_paths.store / "40917930" / "fresh.gob").write_bytes(b"new")
    result = take_snapshot(plain_paths, reader=lambda p: None if p.endswith("fresh.gob") else read_stable(p))
    fresh = {e.path: e for e in repo.read_manifest(result.id).files}["40917930/fresh.gob"]
    assert fresh.hash is None and fresh.unstable


def test_read_stable_reads_a_quiet_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    data, info = read_stable(str(path))
    assert data == b"abc" and info.st_size == 3


def test_symlinks_are_skipped_not_followed(plain_paths, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.gob").write_bytes(b"secret")
    os.symlink(outside, plain_paths.store / "linked")
    result = take_snapshot(plain_paths)
    assert ("linked", "symlink (not followed)") in result.skipped
    files = Repository(plain_paths.snapshots).read_manifest(result.id).files
    assert not any(e.path.startswith("linked") for e in files)


def test_damaged_metadata_still_captured_without_name(plain_paths):
    meta = next(plain_paths.store.glob("*/00000000.gob"))
    meta.write_bytes(b"\x00garbage")
    result = take_snapshot(plain_paths)
    info = {c["dir"]: c for c in result.collections}[meta.parent.name]
    assert info["name"] is None
    files = {e.path for e in Repository(plain_paths.snapshots).read_manifest(result.id).files}
    assert f"{meta.parent.name}/00000000.gob" in files


def test_leftover_temp_files_ignored_by_readers_and_cleaned_by_writers(plain_paths):
    first = take_snapshot(plain_paths)
    repo = Repository(plain_paths.snapshots)
    junk_manifest = repo.manifests / f"{TEMP_PREFIX}{first.id}.manifest.dead"
    junk_manifest.write_bytes(b"partial")
    junk_blob = repo.packs / f"{TEMP_PREFIX}pack.beef"
    junk_blob.write_bytes(b"partial")
    assert repo.list_ids() == [first.id]
    take_snapshot(plain_paths)
    assert not junk_manifest.exists() and not junk_blob.exists()


def test_staged_restore_leftovers_in_store_are_not_captured(plain_paths):
    (plain_paths.store / "40917930" / f"{TEMP_PREFIX}abc.gob.1234").write_bytes(b"staged")
    result = take_snapshot(plain_paths)
    files = {e.path for e in Repository(plain_paths.snapshots).read_manifest(result.id).files}
    assert not any(TEMP_PREFIX in f for f in files)


def test_large_file_lists_share_a_dictionary_blob(tmp_path, state_dir, clock):
    from guardian.snapshots.prune import forget_and_prune
    from guardian.snapshots.verify import verify_repository
    from guardian.local.paths import StatePaths
    from tests.snapshots.conftest import age_files, doc_bytes

    store = tmp_path / "big"
    (store / "c").mkdir(parents=True)
    for i in range(600):
        (store / "c" / f"{i:08x}.gob").write_bytes(doc_bytes(f"doc {i}"))
    age_files(store)
    paths = StatePaths.for_store(store, state_dir)
    repo = Repository(paths.snapshots)
    first = take_snapshot(paths, clock=clock)
    (store / "c" / "00000001.gob").write_bytes(doc_bytes("changed"))
    clock.advance(hours=1)
    second = take_snapshot(paths, clock=clock)
    m1, m2 = repo.read_manifest(first.id), repo.read_manifest(second.id)
    assert m1.files_dict and m2.files_dict == m1.files_dict
    assert second.manifest_bytes < repo.blob_size(m1.files_dict) / 5
    assert len(m2.files) == 600
    forget_and_prune(paths, keep_last=1)
    assert repo.has_blob(m2.files_dict) and verify_repository(repo).ok
