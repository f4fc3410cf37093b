"""The store as it is now: files whose stat matches a snapshot's row keep its hash unread; changed,
new and racy ones are read and hashed; what is not a regular file is passed over."""

from __future__ import annotations

import hashlib
import os

from guardian.format.layout import collection_dir_name
from guardian.memories.filesets import store_fileset
from guardian.snapshots.manifest import FLAG_RACY
from guardian.snapshots.repository import Repository
from tests.memories.conftest import ChromemStore, doc


def test_store_files_reuse_the_rows_of_unchanged_files(chromemh, tmp_path):
    s = ChromemStore(chromemh, tmp_path)
    s.gen(("notes", [doc("same", "a", 1), doc("changed", "b", 2), doc("racy", "c", 3)]))
    for path in s.store.rglob("*.gob"):
        os.utime(path, (1_700_000_000, 1_700_000_000))   # long settled: the snapshot's rows can vouch for them
    snapshot = s.snapshot()
    rows = Repository(s.paths.snapshots).read_manifest_rows(snapshot)[1]
    racy = f"{collection_dir_name('notes')}/{s.file('notes', 'racy').name}"
    rows = [row[:6] + [row[6] | FLAG_RACY] if row[0] == racy else row for row in rows]
    s.gen(("notes", [doc("changed", "b2", 2), doc("new", "d", 4)]))
    folder = s.store / collection_dir_name("notes")
    os.symlink(s.file("notes", "same"), folder / "linked.gob")
    os.mkfifo(folder / "fifo.gob")

    now = store_fileset(s.store, {row[0]: row for row in rows})
    documents = [p for p in folder.iterdir() if p.is_file() and not p.is_symlink() and p.name != "00000000.gob"]
    assert now.files == {f"{folder.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in documents}
    assert set(now.held) == {s.sha256("notes", i) for i in ("changed", "new", "racy")}   # "same" was not read
    assert now.names == {folder.name: "notes"} and now.point == "store"
    only = store_fileset(s.store, {}, {collection_dir_name("elsewhere")})
    assert only.files == {}
