"""guardian.local.catalog: every collection name seen, kept across runs, written only when it grows."""

from __future__ import annotations

import json
import os

from guardian.local.catalog import Catalog


def test_names_are_added_once_with_when_and_where_they_were_seen(tmp_path):
    catalog = Catalog(tmp_path / "deep" / "catalog.json")
    assert catalog.names() == set()
    assert catalog.add(["webapp_memories", "", "checkpoints"], source="scan") is True
    entries = catalog.load()
    assert set(entries) == {"webapp_memories", "checkpoints"}           # an empty name is never kept
    assert entries["checkpoints"]["source"] == "scan" and entries["checkpoints"]["first_seen"].endswith("Z")
    assert Catalog(tmp_path / "deep" / "catalog.json").names() == {"webapp_memories", "checkpoints"}


def test_nothing_new_writes_nothing(tmp_path):
    catalog = Catalog(tmp_path / "catalog.json")
    catalog.add(["a"], source="scan")
    inode = os.stat(catalog.path).st_ino
    assert catalog.add(["a"], source="snapshot") is False
    assert os.stat(catalog.path).st_ino == inode and catalog.load()["a"]["source"] == "scan"
    assert catalog.add(["a", "b"], source="snapshot") is True
    assert os.stat(catalog.path).st_ino != inode                          # replaced whole (atomic write)
    assert sorted(os.listdir(tmp_path)) == ["catalog.json"]                # no temp left


def test_a_damaged_catalog_reads_as_empty_and_is_rebuilt(tmp_path):
    path = tmp_path / "catalog.json"
    for damaged in (b"", b"{not json", b"[1, 2]", json.dumps({"names": {"ok": {}, "bad": 3}}).encode()):
        path.write_bytes(damaged)
        assert set(Catalog(path).load()) <= {"ok"}
    path.write_bytes(b"\x00\x00")
    catalog = Catalog(path)
    assert catalog.names() == set() and catalog.add(["restored"], source="scan")
    assert catalog.names() == {"restored"}
