"""A large restore's runs staged by this process and by worker processes at once: the same files, the
same verdicts, the same refusal of a damaged snapshot, a worker that dies replaced by this process,
and never a write into a folder the restoring process did not open."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import threading

import pytest

from guardian.errors import RestoreError
from guardian.local import procpool, storefs
from guardian.local.paths import StatePaths
from guardian.snapshots import unpack
from guardian.snapshots.repository import Repository
from guardian.restoring.pipeline import InProcess, Restore
from guardian.snapshots.take import take_snapshot
from tests.conftest import chromem_load
from tests.snapshots.conftest import damage_blob, doc_bytes, tree_bytes
from tests.waiting import wait_for


@pytest.fixture
def pools(monkeypatch):
    """Worker processes even on a one-core machine, and the real pools made (a test clears the list
    after its snapshot, whose capture makes one too)."""
    made = []
    new_pool = procpool.new_pool

    def real_pool(workers):
        made.append(new_pool(workers))
        return made[-1]

    monkeypatch.setattr(unpack, "usable_cpus", lambda: 2)
    monkeypatch.setattr(procpool, "new_pool", real_pool)
    monkeypatch.setenv("GUARDIAN_TEST_PARALLEL_CHUNK", "7")   # runs of 7 blobs, a worker from the first file
    return made


def test_a_restore_shared_with_a_worker_writes_the_snapshot_byte_for_byte(any_store, tmp_path, pools, chromemh):
    paths = StatePaths.for_store(any_store, tmp_path / "state")
    take_snapshot(paths)
    pools.clear()   # the capture's pool
    target = tmp_path / "restored"
    target.mkdir()
    result = Restore.of_store(StatePaths(store=target, root=paths.root)).run(InProcess(check_load=False))
    assert len(pools) == 1, "the restore did not share its runs with a worker"
    assert tree_bytes(target) == tree_bytes(any_store) and not result.refused_damaged
    compress = any(p.name.endswith(".gob.gz") for p in any_store.rglob("*"))
    assert chromem_load(chromemh, target, compress)["ok"]


def test_an_in_place_restore_shared_with_a_worker_replaces_every_file(plain_store, tmp_path, pools):
    """Every document changed in the store: each is staged under a temp name next to it (by either
    process) and renamed over it by the restoring one, the old bytes preserved in quarantine."""
    paths = StatePaths.for_store(plain_store, tmp_path / "state")
    take_snapshot(paths)
    pools.clear()   # the capture's pool
    before = tree_bytes(plain_store)
    documents = [p for p in plain_store.rglob("*.gob") if p.name != "00000000.gob"]
    for doc in documents:
        data = doc.read_bytes()
        doc.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))   # same size, other bytes
    result = Restore.of_store(paths).run(InProcess(check_load=False))
    assert pools and tree_bytes(plain_store) == before
    assert len(result.quarantined) >= len(documents)
    leftovers = [p for p in plain_store.rglob("*") if storefs.is_guardian_temp(p.name)]
    assert leftovers == []


def test_a_damaged_blob_met_by_the_worker_stops_the_restore_and_changes_nothing(plain_store, tmp_path, pools):
    paths = StatePaths.for_store(plain_store, tmp_path / "state")
    snap = take_snapshot(paths)
    pools.clear()   # the capture's pool
    repo = Repository(paths.snapshots)
    _, rows = repo.read_manifest_rows(snap.id)
    damage_blob(repo, rows[-1][5])   # the last run: the worker takes runs from the back
    target = tmp_path / "restored"
    target.mkdir()
    with pytest.raises(RestoreError, match="is damaged"):
        Restore.of_store(StatePaths(store=target, root=paths.root)).run(InProcess(check_load=False))
    assert pools and tree_bytes(target) == {} and os.listdir(target) == []


def test_a_worker_killed_mid_run_is_replaced_by_the_restoring_process(plain_store, tmp_path, pools, monkeypatch):
    """The worker is SIGKILLed once it has written a file of its first run (the last of the list):
    the restoring process stages that run again, over the dead worker's half of it, and the
    restore is whole."""
    paths = StatePaths.for_store(plain_store, tmp_path / "state")
    snap = take_snapshot(paths)
    pools.clear()   # the capture's pool
    _, rows = Repository(paths.snapshots).read_manifest_rows(snap.id)
    last_names = {row[0].rsplit("/", 1)[-1] for row in rows[-7:] if row[5]}
    target = tmp_path / "restored"
    target.mkdir()
    monkeypatch.setenv("GUARDIAN_TEST_SLOW_IO", "0.05")   # a run of 7 takes >= 0.35 s: killed within it
    killed: list[int] = []

    def staged_by_worker():
        return [name for folder, _, names in os.walk(target) for name in names if name in last_names]

    def kill_the_worker():
        wait_for(lambda: pools and pools[0]._processes, what="the restore's worker")
        wait_for(staged_by_worker, timeout=60, what="a file staged by the worker")
        for pid in list(pools[0]._processes):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_the_worker)
    killer.start()
    try:
        result = Restore.of_store(StatePaths(store=target, root=paths.root)).run(InProcess(check_load=False))
    finally:
        killer.join()
    assert killed and not result.refused_damaged
    assert tree_bytes(target) == tree_bytes(plain_store)


def one_blob_run(tmp_path, data: bytes):
    """A repository holding ``data`` alone: (repo, its digest, the run that reads it, an empty folder)."""
    repo = Repository(tmp_path / "repo").ensure()
    digest = hashlib.sha256(data).hexdigest()
    repo.put_blob(data, digest)
    repo.sync()
    groups, other = repo.locate([digest])
    assert not other
    (run,) = groups.items()
    folder = tmp_path / "out"
    folder.mkdir()
    return repo, digest, run, folder


def test_stage_run_judges_a_blob_as_each_path_it_is_restored_to(tmp_path):
    garbage = b"not a gob at all"
    repo, digest, run, folder = one_blob_run(tmp_path, garbage)
    with storefs.DirFds(folder) as dirs:
        targets = {digest: [("0a1b2c3d/1234abcd.gob", "", "1234abcd.gob", True, 0o644, 10**18),
                            ("0a1b2c3d/notes.txt", "", "notes.txt", True, 0o640, 10**18)]}
        result = unpack.stage_run(repo, dirs.get, run, targets, judge=True)
        assert [path for path, _ in result.refused] == ["0a1b2c3d/1234abcd.gob"]
        assert result.staged == [("0a1b2c3d/notes.txt", "", "notes.txt")]
        assert (folder / "notes.txt").read_bytes() == garbage and not (folder / "1234abcd.gob").exists()
        info = (folder / "notes.txt").stat()
        assert (info.st_mode & 0o777, info.st_mtime_ns) == (0o640, 10**18)
        targets = {digest: [("x/y.gob", "", "y.gob", True, 0o644, 10**18)]}
        assert unpack.stage_run(repo, dirs.get, run, targets, judge=False).staged == \
            [("x/y.gob", "", "y.gob")]


def test_a_failed_run_removes_the_temp_files_it_wrote(tmp_path):
    """A run that stops (its second blob's pack frame is damaged) leaves none of its temp files."""
    repo = Repository(tmp_path / "repo").ensure()
    blobs = [b"first blob", b"second blob"]
    digests = [hashlib.sha256(b).hexdigest() for b in blobs]
    for data, digest in zip(blobs, digests):
        repo.put_blob(data, digest)
    repo.sync()
    damage_blob(repo, digests[1])
    groups, _ = repo.locate(digests)
    (pack_id, frames), = groups.items()
    folder = tmp_path / "out"
    folder.mkdir()
    with storefs.DirFds(folder) as dirs:
        targets = {d: [(f"f{i}.txt", "", f"f{i}.txt", False, 0o644, 10**18)] for i, d in enumerate(digests)}
        with pytest.raises(Exception, match="damaged|hash|corrupt"):
            unpack.stage_run(repo, dirs.get, (pack_id, frames), targets, judge=False)
    assert os.listdir(folder) == []


def test_a_worker_writes_only_into_the_very_folder_the_restoring_process_opened(tmp_path):
    root = tmp_path / "store"
    (root / "coll").mkdir(parents=True)
    info = os.stat(root / "coll")
    folders = unpack.CheckedFolders(str(root), {"coll": (info.st_dev, info.st_ino)})
    assert os.fstat(folders("coll")).st_ino == info.st_ino
    swapped = unpack.CheckedFolders(str(root), {"coll": (info.st_dev, info.st_ino)})
    os.rename(root / "coll", root / "moved")
    (root / "coll").mkdir()   # a new folder under the same name
    with pytest.raises(storefs.UnsafeFolder, match="replaced"):
        swapped("coll")
    os.rmdir(root / "coll")
    os.symlink(root / "moved", root / "coll")   # a symlink to the very folder is refused too
    with pytest.raises(storefs.UnsafeFolder):
        unpack.CheckedFolders(str(root), {"coll": (info.st_dev, info.st_ino)})("coll")


def test_unsafe_folder_crosses_a_process_boundary_intact():
    error = pickle.loads(pickle.dumps(storefs.UnsafeFolder("a/b", "symlink")))
    assert isinstance(error, storefs.UnsafeFolder) and (error.filename, error.what) == ("a/b", "symlink")


def test_a_document_staged_is_known_to_the_loadability_check_by_its_stat_and_id(tmp_path):
    """Each document judged loadable as it was written is reported with the stat key the check's
    listing will see (size, the snapshot's mtime, the inode) and its ID."""
    from guardian.format.chromem import decode_document

    data = doc_bytes("a memory")
    repo, digest, run, folder = one_blob_run(tmp_path, data)
    with storefs.DirFds(folder) as dirs:
        targets = {digest: [("0a1b2c3d/1234abcd.gob", "", "1234abcd.gob", True, 0o644, 10**18),
                            ("0a1b2c3d/2345bcde.gob", "", "2345bcde.gob", False, 0o644, 10**18)]}
        result = unpack.stage_run(repo, dirs.get, run, targets, judge=True)
    whole, temp = (folder / "1234abcd.gob").stat().st_ino, (folder / result.staged[1][2]).stat().st_ino
    doc_id = decode_document(data).id
    assert result.known == [("0a1b2c3d/1234abcd.gob", len(data), 10**18, whole, doc_id),
                            ("0a1b2c3d/2345bcde.gob", len(data), 10**18, temp, doc_id)]


def test_a_file_gets_its_snapshot_mode_whatever_the_umask(tmp_path):
    """Files are created with their mode; where the umask took bits away, they are put back."""
    folder = tmp_path / "out"
    folder.mkdir()
    old = os.umask(0o077)
    try:
        with storefs.DirFds(folder) as dirs:
            inode = unpack.write_new(dirs.get(""), "a.gob", b"data", 0o644, 10**18)
            unpack.write_new(dirs.get(""), "b.gob", b"data", 0o600, 10**18)
    finally:
        os.umask(old)
    info = (folder / "a.gob").stat()
    assert (oct(info.st_mode & 0o777), info.st_ino, info.st_mtime_ns) == (oct(0o644), inode, 10**18)
    assert (folder / "b.gob").stat().st_mode & 0o777 == 0o600
    with storefs.DirFds(folder) as dirs, pytest.raises(FileExistsError):
        unpack.write_new(dirs.get(""), "a.gob", b"other", 0o644, 10**18)   # never over a file
    assert (folder / "a.gob").read_bytes() == b"data"


def test_a_restore_into_a_target_is_shared_with_a_worker_too(any_store, tmp_path, pools, chromemh):
    """`restore --target` stages as a restore into the store does: byte for byte, modes and mtimes
    kept, one filesystem sync, and the real loader loads the target."""
    from guardian.restoring.destinations import TargetFolder
    from guardian.restoring.sources import LocalSource
    from guardian.snapshots.restore import read_snapshot

    paths = StatePaths.for_store(any_store, tmp_path / "state")
    snapshot_id = take_snapshot(paths).id
    pools.clear()   # the capture's pool
    manifest = read_snapshot(Repository(paths.snapshots), snapshot_id)
    target = tmp_path / "restored"
    Restore(LocalSource(paths), TargetFolder(paths, target)).run(InProcess(check_load=False))
    assert len(pools) == 1 and tree_bytes(target) == tree_bytes(any_store)
    for entry in manifest.files:
        info = os.lstat(target / entry.path)
        assert (info.st_mtime_ns, info.st_mode & 0o777) == (entry.mtime_ns, entry.mode & 0o777)
    compress = any(p.name.endswith(".gob.gz") for p in any_store.rglob("*"))
    assert chromem_load(chromemh, target, compress)["ok"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(storefs.STAGE_PREFIX)]
