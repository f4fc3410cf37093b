"""Pack files: format, damage, the old per-blob layout (read and migrated), what a snapshot needs."""

import os
import shutil
from datetime import timedelta

import pytest
import zstandard

from guardian.errors import SnapshotError
from guardian.snapshots.packs import PACK_MAGIC, PackError, PackWriter, read_index
from guardian.snapshots.prune import forget_and_prune
from guardian.snapshots.repository import Repository, sha256_hex
from guardian.restoring.pipeline import Restore
from guardian.restoring.request import RestoreRequest
from guardian.snapshots.take import take_snapshot
from guardian.snapshots.verify import verify_repository

from tests.snapshots.conftest import tree_bytes


def write_pack(folder, blobs: list[bytes], target=1 << 30):
    writer = PackWriter(folder, ".guardian-tmp-pack.test", target=target)
    for data in blobs:
        writer.add(sha256_hex(data), zstandard.ZstdCompressor().compress(data), len(data))
    return writer.finish()


def test_pack_names_itself_and_indexes_every_blob(tmp_path):
    blobs = [os.urandom(100 + i) for i in range(20)]
    done = write_pack(tmp_path, blobs)
    path = tmp_path / f"{done.pack_id}.pack"
    assert sha256_hex(path.read_bytes()) == done.pack_id and path.read_bytes().startswith(PACK_MAGIC)
    entries = read_index(path)
    assert [e[0] for e in entries] == [sha256_hex(b) for b in blobs]
    data = path.read_bytes()
    for (digest, offset, length, raw), blob in zip(entries, blobs):
        assert zstandard.ZstdDecompressor().decompress(data[offset:offset + length]) == blob and raw == len(blob)
    assert not any(p.name.startswith(".guardian-tmp-") for p in tmp_path.iterdir())


def test_writer_closes_a_pack_at_its_target_size(tmp_path):
    writer = PackWriter(tmp_path, ".guardian-tmp-pack.t", target=1000)
    for i in range(10):
        data = os.urandom(400)
        writer.add(sha256_hex(data), data, 400)  # stored frames need not be compressed for the writer
    writer.finish()
    assert len(writer.finished) == 4 and sum(len(p.entries) for p in writer.finished) == 10


@pytest.mark.parametrize("cut", [1, 8, 60, 200])
def test_torn_pack_is_refused_whole(tmp_path, cut):
    done = write_pack(tmp_path, [os.urandom(300) for _ in range(5)])
    path = tmp_path / f"{done.pack_id}.pack"
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(PackError):
        read_index(path)


def test_damaged_pack_is_reported_and_its_blobs_missing(plain_paths):
    first = take_snapshot(plain_paths)
    repo = Repository(plain_paths.snapshots)
    pack = repo.pack_path(repo.read_manifest(first.id).packs[0])
    pack.write_bytes(pack.read_bytes()[:-3])
    fresh = Repository(plain_paths.snapshots)
    report = verify_repository(fresh)
    assert not report.ok and any(p["kind"] == "pack" for p in report.problems)
    assert first.id in report.affected


def test_old_per_blob_layout_is_read_then_migrated_once(plain_paths, clock):
    take_snapshot(plain_paths, clock=clock)
    original = tree_bytes(plain_paths.store)
    repo = Repository(plain_paths.snapshots)
    digests = repo.list_blobs()
    # rewrite the repository as an older guardian left it: one zstd file per blob, no packs
    for digest in digests:
        data = repo.read_blob(digest)
        path = repo.blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
    shutil.rmtree(repo.packs)
    old = Repository(plain_paths.snapshots)
    assert old.list_blobs() == digests and verify_repository(old).ok   # readable as it is
    next(plain_paths.store.glob("*/1*.gob")).write_bytes(b"newer")
    clock.advance(hours=1)
    second = take_snapshot(plain_paths, clock=clock)                   # a writer migrates it
    migrated = Repository(plain_paths.snapshots)
    assert not migrated.blobs.exists() and migrated.loose_blobs() == []
    assert set(digests) <= set(migrated.list_blobs()) and verify_repository(migrated).ok
    Restore.of_store(plain_paths, RestoreRequest(at=clock.now - timedelta(minutes=30))).run()
    assert tree_bytes(plain_paths.store) == original
    assert second.read_files == 1


def test_list_blobs_sees_loose_blobs_written_since_and_ignores_other_names(tmp_path):
    reader = Repository(tmp_path / "repo")
    assert reader.list_blobs() == [] and reader.loose_blobs() == []    # lists (and caches) an empty folder
    data = os.urandom(64)
    digest = sha256_hex(data)
    path = reader.blob_path(digest)                                    # another process writes the old layout
    path.parent.mkdir(parents=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(data))
    for stray in ("notablob.zst", f"{digest}.zst.tmp", f".guardian-tmp-{digest[:8]}", "Z" * 64 + ".zst"):
        (path.parent / stray).write_bytes(b"x")
    assert reader.list_blobs() == [digest]                             # listed afresh, only real blob names
    assert reader.loose_blobs() == [digest] and reader.read_blob(digest) == data


def test_migration_killed_half_way_loses_nothing(plain_paths):
    take_snapshot(plain_paths)
    repo = Repository(plain_paths.snapshots)
    digests = repo.list_blobs()
    for digest in digests:
        path = repo.blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(zstandard.ZstdCompressor().compress(repo.read_blob(digest)))
    # as if killed after the new pack was durable but before the loose files went: both exist
    both = Repository(plain_paths.snapshots)
    assert both.list_blobs() == digests and verify_repository(both).ok
    both.migrate_loose()
    after = Repository(plain_paths.snapshots)
    assert after.loose_blobs() == [] and after.list_blobs() == digests and verify_repository(after).ok


def test_data_files_for_lists_manifest_and_packs_and_prune_keeps_them(plain_paths, clock):
    ids = []
    for i in range(4):
        next(plain_paths.store.glob("*/1*.gob")).write_bytes(f"v{i}".encode())
        ids.append(take_snapshot(plain_paths, clock=clock).id)
        clock.advance(hours=1)
    repo = Repository(plain_paths.snapshots)
    needed = {i: repo.data_files_for(i) for i in ids}
    assert needed[ids[0]][0] == f"manifests/{ids[0]}.manifest"
    assert all(f.startswith(("manifests/", "packs/")) for files in needed.values() for f in files)
    forget_and_prune(plain_paths, keep_last=2)
    for snapshot_id in ids[2:]:
        files = Repository(plain_paths.snapshots).data_files_for(snapshot_id)
        assert all((repo.root / f).is_file() for f in files)
    assert verify_repository(Repository(plain_paths.snapshots)).ok


def test_prune_repacks_a_mostly_unused_pack(plain_paths, clock):
    first = take_snapshot(plain_paths, clock=clock)
    for path in sorted(plain_paths.store.glob("*/*.gob"))[:-3]:
        path.write_bytes(path.read_bytes() + b"changed")   # nearly every blob of the first pack is replaced
    clock.advance(hours=1)
    second = take_snapshot(plain_paths, clock=clock)
    repo = Repository(plain_paths.snapshots)
    first_pack = repo.read_manifest(first.id).packs[0]
    result = forget_and_prune(plain_paths, keep_last=1)
    after = Repository(plain_paths.snapshots)
    assert result.forgotten == [first.id] and first_pack not in after.pack_ids()
    assert result.bytes_freed > 0 and verify_repository(after).ok
    assert after.read_manifest(second.id).blob_hashes() <= set(after.list_blobs())


def test_read_blob_of_a_missing_blob_says_so(tmp_path):
    repo = Repository(tmp_path / "repo").ensure()
    with pytest.raises(SnapshotError, match="missing"):
        repo.read_blob("0" * 64)


def test_a_gzip_blob_is_framed_without_growing_and_reads_back_byte_identical(tmp_path):
    """chromem's .gob.gz files do not shrink under zstd: they get the fast level, same frame format."""
    import gzip
    import random

    rng = random.Random(7)
    plain = bytes(rng.getrandbits(8) for _ in range(4000)) + b"memory " * 400
    gz = gzip.compress(plain)
    repo = Repository(tmp_path / "repo")
    written = {data: repo.put_blob(data) for data in (plain, gz)}
    repo.sync()
    for data in written:
        assert repo.read_blob(sha256_hex(data)) == data
    assert written[plain] < len(plain)                 # the plain blob was really compressed
    assert written[gz] <= len(gz) + 64                 # the gzip one is framed, not grown


def test_a_pack_found_on_disk_gets_a_folder_fsync_before_a_manifest_can_refer_to_it(tmp_path, monkeypatch):
    """A pack another process renamed in (a worker of a take killed before its folder fsync) may not be
    durable in the folder: the first sync of a repository object that finds it fsyncs the pack folder,
    even with nothing written; a sync with nothing new found or written does not."""
    from guardian.snapshots import repository

    writer = Repository(tmp_path / "repo").ensure()
    writer.put_blob(b"from a process that died", None)
    writer.sync()
    synced = []
    real = repository.fsync_dir
    monkeypatch.setattr(repository, "fsync_dir", lambda path: synced.append(path) or real(path))
    reader = Repository(tmp_path / "repo")
    assert reader.has_blob(sha256_hex(b"from a process that died"))
    reader.sync()
    assert synced == [reader.packs]
    reader.sync()
    assert synced == [reader.packs]   # nothing new since
    writer.put_blob(b"another", None)
    writer.sync()
    reader.refresh()
    reader.sync()
    assert synced == [reader.packs, writer.packs, reader.packs]
