
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore import restore_store
from guardian.snapshots.take import take_snapshot
from guardian.snapshots.verify import verify_repository

from tests.snapshots.conftest import damage_blob, drop_blob, tree_bytes


def test_intact_repository_verifies_deep(store_paths):
    take_snapshot(store_paths)
    report = verify_repository(Repository(store_paths.snapshots), deep=True, scratch=store_paths.cache)
    assert report.ok and report.blobs_checked > 0
    assert all(r["loadable"] for r in report.deep.values()) and len(report.deep) == 1


def test_damaged_blob_names_affected_snapshots_and_unaffected_still_restores(plain_paths, clock):
    first = take_snapshot(plain_paths, clock=clock)
    original = tree_bytes(plain_paths.store)
    doc = next(plain_paths.store.glob("*/1*.gob"))
    doc.write_bytes(doc.read_bytes() + b"changed")
    clock.advance(hours=1)
    second = take_snapshot(plain_paths, clock=clock)
    repo = Repository(plain_paths.snapshots)
    rel = str(doc.relative_to(plain_paths.store))
    new_hash = {e.path: e.hash for e in repo.read_manifest(second.id).files}[rel]
    damage_blob(repo, new_hash)
    report = verify_repository(repo)
    assert not report.ok
    assert list(report.affected) == [second.id]
    assert first.id in report.snapshots and first.id not in report.affected
    assert report.problems[0]["blob"] == new_hash and report.problems[0]["snapshots"] == [second.id]
    restore_store(plain_paths, clock.now - __import__("datetime").timedelta(minutes=30))
    assert tree_bytes(plain_paths.store) == original


def test_missing_blob_and_damaged_manifest_reported(plain_paths, clock):
    first = take_snapshot(plain_paths, clock=clock)
    clock.advance(hours=1)
    second = take_snapshot(plain_paths, clock=clock)
    repo = Repository(plain_paths.snapshots)
    shared = repo.read_manifest(first.id).files[0].hash
    drop_blob(repo, shared)
    path = repo.manifest_path(second.id)
    path.write_bytes(b"nonsense")
    report = verify_repository(repo)
    kinds = {p["kind"]: p for p in report.problems}
    assert kinds["manifest"]["snapshots"] == [second.id]
    assert "missing" in kinds["blob"]["detail"] and kinds["blob"]["snapshots"] == [first.id]


def test_deep_restores_a_snapshot_of_a_damaged_store_as_a_restore_would(plain_paths):
    (plain_paths.store / "40917930" / "00000000.gob").unlink()  # chromem refuses documents without metadata
    taken = take_snapshot(plain_paths)   # the first snapshot: no good copy of that metadata anywhere
    report = verify_repository(Repository(plain_paths.snapshots), deep=True, scratch=plain_paths.cache)
    assert report.ok and report.problems == []   # the snapshot recorded the damage faithfully
    assert report.deep[taken.id]["loadable"] and report.deep[taken.id]["collections"] == 4
    assert [item["path"] for item in report.recorded[taken.id]] == ["40917930"]
    assert "leaves the collection out" in report.recorded[taken.id][0]["restore"]
    assert not any(p.name.startswith("verify-") for p in plain_paths.cache.iterdir())  # scratch copies removed
