"""Reuse of the previous snapshot's rows: what may be trusted without reading, and what may not."""

import os
import stat

from guardian.snapshots.repository import Repository
from guardian.snapshots.take import take_snapshot

from tests.snapshots.conftest import doc_bytes, drop_blob


def entries(paths, snapshot_id):
    return {e.path: e for e in Repository(paths.snapshots).read_manifest(snapshot_id).files}


def test_mode_only_change_is_recorded_without_reading(plain_paths):
    first = take_snapshot(plain_paths)
    doc = sorted(plain_paths.store.glob("*/*.gob"))[2]
    rel = str(doc.relative_to(plain_paths.store))
    mtime = os.stat(doc).st_mtime_ns
    os.chmod(doc, 0o640)
    os.utime(doc, ns=(mtime, mtime))  # chmod does not touch mtime; keep it old (outside the racy window)
    second = take_snapshot(plain_paths)
    before, after = entries(plain_paths, first.id)[rel], entries(plain_paths, second.id)[rel]
    assert second.read_files == 0
    assert after.mode == 0o640 and stat.S_IMODE(before.mode) != 0o640 and after.hash == before.hash


def test_missing_blob_makes_the_file_read_again(plain_paths):
    first = take_snapshot(plain_paths)
    repo = Repository(plain_paths.snapshots)
    victim = sorted(entries(plain_paths, first.id).values(), key=lambda e: e.path)[1]
    drop_blob(repo, victim.hash)
    second = take_snapshot(plain_paths)
    assert second.read_files == 1 and repo.has_blob(victim.hash)
    assert entries(plain_paths, second.id)[victim.path].hash == victim.hash


def test_damaged_latest_manifest_falls_back_to_an_older_one(plain_paths, clock):
    first = take_snapshot(plain_paths, clock=clock)
    clock.advance(hours=1)
    second = take_snapshot(plain_paths, clock=clock)
    repo = Repository(plain_paths.snapshots)
    repo.manifest_path(second.id).write_bytes(b"nonsense")
    clock.advance(hours=1)
    third = take_snapshot(plain_paths, clock=clock)
    assert third.read_files == 0  # reused the first snapshot's rows
    assert entries(plain_paths, third.id) == entries(plain_paths, first.id)


def test_unchanged_store_takes_the_previous_file_list_as_it_is(plain_paths, clock):
    from guardian.snapshots.manifest import body_of

    first = take_snapshot(plain_paths, clock=clock)
    clock.advance(hours=1)
    second = take_snapshot(plain_paths, clock=clock)
    repo = Repository(plain_paths.snapshots)
    data = [repo.manifest_path(i).read_bytes() for i in (first.id, second.id)]
    assert second.read_files == 0 and body_of(data[0]) == body_of(data[1])
    assert entries(plain_paths, second.id) == entries(plain_paths, first.id)
    assert repo.read_manifest(second.id).packs == repo.read_manifest(first.id).packs


def test_damaged_stat_cache_only_costs_time(plain_paths, clock):
    first = take_snapshot(plain_paths, clock=clock)
    cache = plain_paths.cache / "snapshot-stats"
    cache.write_bytes(cache.read_bytes()[:100])
    doc = sorted(plain_paths.store.glob("*/*.gob"))[3]
    clock.advance(hours=1)
    second = take_snapshot(plain_paths, clock=clock)
    assert second.read_files == 0 and entries(plain_paths, second.id) == entries(plain_paths, first.id)
    doc.write_bytes(doc_bytes("changed"))
    os.utime(doc, ns=(1, 1))  # an old mtime: only the stat comparison with the previous rows sees it
    clock.advance(hours=1)
    third = take_snapshot(plain_paths, clock=clock)
    rel = str(doc.relative_to(plain_paths.store))
    assert third.read_files == 1 and entries(plain_paths, third.id)[rel].size == len(doc_bytes("changed"))


def test_a_file_written_during_the_snapshot_window_is_read_again(plain_paths, clock):
    take_snapshot(plain_paths, clock=clock)
    doc = sorted(plain_paths.store.glob("*/*.gob"))[4]
    doc.write_bytes(doc_bytes("fresh bytes"))   # modified now: within the racy window of the next snapshot
    clock.advance(hours=1)
    second = take_snapshot(plain_paths, clock=clock)
    clock.advance(hours=1)
    third = take_snapshot(plain_paths, clock=clock)   # the racy row forces a read, no list copy
    rel = str(doc.relative_to(plain_paths.store))
    assert second.read_files == 1 and third.read_files == 1
    assert entries(plain_paths, third.id)[rel].size == len(doc_bytes("fresh bytes"))
