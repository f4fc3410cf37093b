from guardian.snapshots.prune import forget_and_prune
from guardian.snapshots.repository import Repository
from guardian.restoring.pipeline import Restore
from guardian.snapshots.take import take_snapshot
from guardian.snapshots.verify import verify_repository

from tests.snapshots.conftest import doc_bytes, tree_bytes


def test_retention_forgets_old_and_removes_unreferenced_blobs(plain_paths, clock):
    doc = next(plain_paths.store.glob("*/1*.gob"))
    versions = []
    ids = []
    for i in range(5):
        doc.write_bytes(doc_bytes(f"version {i}"))
        versions.append(tree_bytes(plain_paths.store))
        ids.append(take_snapshot(plain_paths, clock=clock).id)
        clock.advance(hours=1)
    repo = Repository(plain_paths.snapshots)
    blobs_before = set(repo.list_blobs())
    result = forget_and_prune(plain_paths, keep_last=2)
    assert result.kept == ids[:2:-1][:2] == [ids[4], ids[3]]
    assert result.forgotten == [ids[2], ids[1], ids[0]]
    assert repo.list_ids() == [ids[3], ids[4]]
    # versions 1 and 2 had a pack each, now deleted; version 0 shares the first snapshot's pack with
    # blobs still needed, so that pack (mostly in use) is kept whole
    assert result.blobs_removed == 2 and len(repo.list_blobs()) == len(blobs_before) - 2
    referenced = set().union(*(repo.read_manifest(i).blob_hashes() for i in repo.list_ids()))
    assert referenced <= set(repo.list_blobs())
    assert verify_repository(Repository(plain_paths.snapshots)).ok
    Restore.of_store(plain_paths).run()
    assert tree_bytes(plain_paths.store) == versions[4]


def test_unreadable_kept_manifest_blocks_garbage_collection(plain_paths, clock):
    take_snapshot(plain_paths, clock=clock)
    clock.advance(hours=1)
    doc = next(plain_paths.store.glob("*/1*.gob"))
    doc.write_bytes(b"other")
    second = take_snapshot(plain_paths, clock=clock)
    repo = Repository(plain_paths.snapshots)
    blobs = repo.list_blobs()
    repo.manifest_path(second.id).write_bytes(b"broken")
    result = forget_and_prune(plain_paths, keep_last=1)
    assert result.gc_skipped and result.blobs_removed == 0 and repo.list_blobs() == blobs
