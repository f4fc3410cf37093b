"""What a snapshot fetched from a damaged replica restores instead of its lost files (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

from guardian.replicas import recovery
from guardian.snapshots.manifest import FLAG_LOST, CollectionInfo, Manifest, ManifestEntry


def row(path: str, digest: str | None, size: int = 10) -> ManifestEntry:
    return ManifestEntry(path, size, 0o644, 1, 2, digest)


def manifest(files, collections=(("aaaa1111", "notes"), ("bbbb2222", None))) -> Manifest:
    return Manifest(id="20260101T000000.000000Z-abcd", time=datetime.now(timezone.utc), store="/s", compress=False,
                    collections=[CollectionInfo(d, n, 1) for d, n in collections], files=list(files))


NEWEST = manifest([row("aaaa1111/00000000.gob", "m1"), row("aaaa1111/d1.gob", "new1"), row("aaaa1111/d2.gob", "d2"),
                   row("bbbb2222/00000000.gob", "m2"), row("bbbb2222/d3.gob", "d3"), row("skipped.gob", None)])


def test_lost_files_are_those_whose_content_is_not_present():
    lost = recovery.lost_files(NEWEST, {"m1", "d2", "m2", "d3"})
    assert list(lost) == ["aaaa1111/d1.gob"]


def test_an_older_snapshot_offers_another_version_of_a_lost_file():
    lost = recovery.lost_files(NEWEST, {"m1", "d2", "m2", "d3"})
    older = manifest([row("aaaa1111/d1.gob", "old1"), row("aaaa1111/d2.gob", "d2")])
    same = manifest([row("aaaa1111/d1.gob", "new1")])                  # the same lost version: no help
    assert recovery.older_candidates(lost, older) == {"aaaa1111/d1.gob": row("aaaa1111/d1.gob", "old1")}
    assert recovery.older_candidates(lost, same) == {}


def test_rewrite_restores_older_copies_rebuilt_metadata_and_leaves_out_the_rest():
    lost = recovery.lost_files(NEWEST, {"d2"})
    older = {"aaaa1111/d1.gob": ("20251231T000000.000000Z-0000", row("aaaa1111/d1.gob", "old1", 9))}
    rebuilt = {"aaaa1111/00000000.gob": ("meta", 40)}
    still_lost = {p: e for p, e in lost.items() if p not in older and p not in rebuilt}
    left_out = recovery.left_out_folders(still_lost, recovery.collection_names(NEWEST))
    assert left_out == {"bbbb2222"}                            # its metadata is lost and it has no recorded name
    result, found = recovery.rewrite(NEWEST, older, rebuilt, lost, left_out)
    rows = {e.path: e for e in result.files}
    assert rows["aaaa1111/d1.gob"].hash == "old1" and rows["aaaa1111/d1.gob"].size == 9
    assert rows["aaaa1111/00000000.gob"].hash == "meta" and rows["aaaa1111/00000000.gob"].size == 40
    assert rows["aaaa1111/d2.gob"] == NEWEST.files[2]          # intact: as it was
    assert rows["bbbb2222/00000000.gob"].hash is None and rows["bbbb2222/d3.gob"].hash is None
    assert rows["skipped.gob"] == NEWEST.files[5]
    assert all(rows[p].flags & FLAG_LOST for p in ("aaaa1111/d1.gob", "aaaa1111/00000000.gob", "bbbb2222/d3.gob"))
    assert found.older_copies == {"aaaa1111/d1.gob": "20251231T000000.000000Z-0000"}
    assert found.rebuilt == ["aaaa1111/00000000.gob"]
    assert found.missing == ["bbbb2222/00000000.gob", "bbbb2222/d3.gob"]   # a whole collection: it would not load
    assert NEWEST.files[1].hash == "new1"                      # the fetched manifest itself is not changed


def test_metadata_files_are_told_from_documents():
    assert recovery.is_metadata("aaaa1111/00000000.gob") and recovery.is_metadata("aaaa1111/00000000.gob.gz")
    assert not recovery.is_metadata("aaaa1111/0a000000.gob") and not recovery.is_metadata("00000000.gob")
    assert not recovery.is_metadata("a/b/00000000.gob")
