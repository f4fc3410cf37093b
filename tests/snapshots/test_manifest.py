import json
from datetime import datetime, timezone

import pytest

from guardian.errors import SnapshotError
from guardian.snapshots.manifest import (FLAG_UNSTABLE, CollectionInfo, ManifestEntry, Manifest, check_rel_path,
                                         delta_rows, apply_delta,
                                         decode_header, decode_manifest, encode_files, encode_manifest)

H = "ab" * 32
T = datetime(2026, 11, 26, 10, 15, tzinfo=timezone.utc)


def manifest(files):
    return Manifest(id="20261126T101500.000000Z-abcd", time=T, store="/s", compress=False,
                    collections=[CollectionInfo("a", "notes", 1, H)], dirs=[("a", 0o700)], files=files)


def test_round_trip_with_and_without_dictionary():
    files = [ManifestEntry("a/x.gob", 3, 0o644, 5, 7, H),
             ManifestEntry("a/00000000.gob", 1, 0o600, 5, 8, None, FLAG_UNSTABLE)]
    for dictionary in (None, json.loads(encode_files(files[:1])), json.loads(encode_files(files))):
        m = manifest(files)
        m.files_dict = "cd" * 32 if dictionary is not None else None
        data = encode_manifest(m, dictionary)
        back = decode_manifest(data, "t", load_dictionary=lambda h: dictionary)
        assert sorted(back.files, key=lambda e: e.path) == sorted(files, key=lambda e: e.path)
        assert back.time == T and back.collections[0].name == "notes" and back.documents == 1


def test_header_only():
    back = decode_manifest(encode_manifest(manifest([ManifestEntry("a/x.gob", 3, 0o644, 5, 7, H)])), header_only=True)
    assert back.files is None and back.id.endswith("abcd")


def test_header_without_its_pack_list():
    m = manifest([ManifestEntry("a/x.gob", 3, 0o644, 5, 7, H)])
    m.packs = ["cd" * 32, "ef" * 32]
    data = encode_manifest(m)
    assert decode_header(data).packs == m.packs
    light = decode_header(data, packs=False)
    assert light.packs is None and "packs" not in light.extra and light.collections == m.collections
    m.packs = ["not a hash"]
    with pytest.raises(SnapshotError, match="invalid pack list"):
        decode_header(encode_manifest(m))
    assert decode_header(encode_manifest(m), packs=False).id == m.id   # not read, not checked


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "", "a/b\x00", "..", "a\\..\\b"])
def test_unsafe_paths_are_refused(path):
    with pytest.raises(ValueError):
        check_rel_path(path)
    data = encode_manifest(manifest([ManifestEntry(path, 3, 0o644, 5, 7, H)]))
    with pytest.raises(SnapshotError, match="tampered"):
        decode_manifest(data)


@pytest.mark.parametrize("bad", [ManifestEntry("a/x", -1, 0o644, 5, 7, H), ManifestEntry("a/x", 1, 0o644, 5, 7, "zz"),
                                 ManifestEntry("a/x", 1, 0o644, 5, 7, None),
                                 ManifestEntry("a/x", 1, 0o170000, 5, 7, H)])
def test_bad_entries_are_refused(bad):
    with pytest.raises(SnapshotError):
        decode_manifest(encode_manifest(manifest([bad])))


def test_duplicate_paths_refused():
    entry = ManifestEntry("a/x", 1, 0o644, 5, 7, H)
    with pytest.raises(SnapshotError, match="twice"):
        decode_manifest(encode_manifest(manifest([entry, entry])))


@pytest.mark.parametrize("cut", [0, 5, 25, 40, -3])
def test_truncated_or_garbled_manifest_is_damaged(cut):
    data = encode_manifest(manifest([ManifestEntry("a/x", 1, 0o644, 5, 7, H)]))
    with pytest.raises(SnapshotError):
        decode_manifest(data[:cut] if cut else b"junk" + data)


def test_bad_collection_dir_refused():
    m = manifest([])
    m.collections = [CollectionInfo("../escape", "x", 0)]
    with pytest.raises(SnapshotError):
        decode_manifest(encode_manifest(m))


def test_delta_against_base_list_is_small_and_exact():
    base = [[f"c/{i:08x}.gob", i, 0o644, i, i, f"{i:064x}", 0] for i in range(1000)]
    rows = [list(r) for r in base]
    rows[500][5] = "f" * 64
    del rows[10]
    rows.append(["d/new.gob", 1, 0o644, 1, 1, "e" * 64, 0])
    ops = delta_rows(rows, base)
    assert len(ops) == 5 and apply_delta(ops, base) == rows


@pytest.mark.parametrize("ops", [[[990, 20]], [[-1, 2]], [[0, 0]], {"x": 1}])
def test_delta_references_out_of_range_are_refused(ops):
    base = [[f"c/{i}", 1, 0o644, 1, 1, H, 0] for i in range(1000)]
    with pytest.raises(ValueError):
        apply_delta(ops, base)
