"""What the snapshots and the damaged bytes offer a repair."""

from __future__ import annotations

from guardian.format import chromem
from guardian.repair.sources import load_versions, salvage_document_id
from guardian.snapshots.repository import Repository
from guardian.snapshots.take import take_snapshot
from tests.conftest import STORE_GZ, STORE_PLAIN, copy_store
from tests.repair.helpers_repair import state_paths


def test_salvage_reads_the_id_of_a_truncated_document_plain_and_gz():
    for root, ext in ((STORE_PLAIN, ".gob"), (STORE_GZ, ".gob.gz")):
        path = root / "40917930" / f"d3a0e1a0{ext}"
        data = path.read_bytes()
        doc_id = chromem.read_document(path).id
        assert salvage_document_id(data[: len(data) * 2 // 3], path.name) == doc_id
        assert salvage_document_id(b"", path.name) is None
        assert salvage_document_id(data[:40], path.name) is None  # the id is not there yet
        assert salvage_document_id(data, "ffffffff.gob") is None  # not confirmed by the file name


def test_versions_newest_first_with_validity(tmp_path):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    paths = state_paths(store, tmp_path / "state")
    rel = "40917930/5628d2e7.gob"
    take_snapshot(paths, False)
    (store / rel).write_bytes(b"garbage")
    take_snapshot(paths, False)
    versions = load_versions(Repository(paths.snapshots), {rel: "document", "40917930/00000000.gob": "metadata"})
    # the second snapshot flagged the garbage as damaged and kept the good copy: one distinct version
    assert [v.valid for v in versions[rel]] == [True]
    assert versions[rel][0].doc_id and chromem.document_stem(versions[rel][0].doc_id) == "5628d2e7"
    [meta] = versions["40917930/00000000.gob"]
    assert meta.valid and meta.name == "webapp_memories"
