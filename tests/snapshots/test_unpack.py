"""A large restore's blobs prepared by a worker process ahead of the writer: the same files, the
same verdicts, the same refusal of a damaged snapshot."""

from __future__ import annotations

import pytest

from guardian.errors import RestoreError
from guardian.local import procpool
from guardian.local.paths import StatePaths
from guardian.snapshots import unpack
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore import restore_store
from guardian.snapshots.take import take_snapshot
from tests.snapshots.conftest import damage_blob, tree_bytes


@pytest.fixture
def pools(monkeypatch):
    """Worker processes even on a one-core machine, and the real pools the restore made."""
    made = []

    def real_pool(workers):
        made.append(procpool.new_pool(workers))
        return made[-1]

    monkeypatch.setattr(unpack, "usable_cpus", lambda: 2)
    monkeypatch.setattr(unpack, "new_pool", real_pool)
    monkeypatch.setenv("GUARDIAN_TEST_PARALLEL_CHUNK", "7")   # runs of 7 blobs, a worker from the first file
    return made


def test_a_restore_prepared_by_a_worker_writes_the_snapshot_byte_for_byte(any_store, tmp_path, pools):
    paths = StatePaths.for_store(any_store, tmp_path / "state")
    take_snapshot(paths)
    target = tmp_path / "restored"
    target.mkdir()
    result = restore_store(StatePaths(store=target, root=paths.root), None, check_load=False)
    assert len(pools) == 1, "the restore did not hand its runs to a worker"
    assert tree_bytes(target) == tree_bytes(any_store) and not result.refused_damaged


def test_a_damaged_blob_found_by_the_worker_stops_the_restore_and_changes_nothing(plain_store, tmp_path, pools):
    paths = StatePaths.for_store(plain_store, tmp_path / "state")
    snap = take_snapshot(paths)
    repo = Repository(paths.snapshots)
    _, rows = repo.read_manifest_rows(snap.id)
    damage_blob(repo, rows[-1][5])   # the last run: the worker is well under way when it meets it
    target = tmp_path / "restored"
    target.mkdir()
    with pytest.raises(RestoreError, match="is damaged"):
        restore_store(StatePaths(store=target, root=paths.root), None, check_load=False)
    assert pools and tree_bytes(target) == {}


def test_prepare_run_judges_a_blob_as_each_path_it_is_restored_to(tmp_path):
    repo = Repository(tmp_path / "repo").ensure()
    garbage = b"not a gob at all"
    digest = __import__("hashlib").sha256(garbage).hexdigest()
    repo.put_blob(garbage, digest)
    repo.sync()
    groups, other = repo.locate([digest])
    (pack_id, frames), = groups.items()
    prepared = unpack.prepare_run(str(repo.root), (pack_id, frames),
                                  {digest: ["0a1b2c3d/1234abcd.gob", "0a1b2c3d/notes.txt"]}, True)
    ((got, data, verdicts),) = prepared
    assert got == digest and data == garbage and not other
    assert verdicts[0] and verdicts[1] is None   # a document chromem refuses; a file chromem never reads
    assert unpack.prepare_run(str(repo.root), (pack_id, frames), {digest: ["x/y.gob"]}, False)[0][2] is None
