"""The issue's acceptance cases: the 16 fixture damages, plain and gz, with and without a snapshot."""

from __future__ import annotations

import pytest

from guardian.format import chromem
from guardian.snapshots.take import take_snapshot
from guardian.store.scan import scan_store
from tests.conftest import STORE_GZ, STORE_PLAIN, copy_store
from tests.damage import DAMAGES
from tests.repair.helpers_repair import collection_metadata, loaded_documents, repair, state_paths

# Damages that destroy a document's bytes (the only documents allowed to go missing without a snapshot).
BYTES_GONE = {
    "empty_document": ["5628d2e7"],
    "truncated_document": ["d3a0e1a0"],
    "several_empty_documents": ["252243ab", "64bf43d6", "e8042ae1"],
    "bitflip_embedding": ["49b83176"],
}
METADATA_DAMAGES = {"missing_metadata", "empty_metadata", "truncated_metadata", "garbage_metadata",
                    "metadata_is_directory", "orphan_docs_two_collections"}


@pytest.fixture(scope="module")
def clean_documents():
    return {False: loaded_documents(STORE_PLAIN, False), True: loaded_documents(STORE_GZ, True)}


@pytest.fixture(scope="module")
def clean_metadata():
    return {False: collection_metadata(STORE_PLAIN, False), True: collection_metadata(STORE_GZ, True)}


def damaged_copy(tmp_path, damage: str, compress: bool):
    store = copy_store(STORE_GZ if compress else STORE_PLAIN, tmp_path / "store")
    return store


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_repair_with_snapshot_keeps_every_document(tmp_path, damage, compress, clean_documents, clean_metadata):
    store = damaged_copy(tmp_path, damage, compress)
    state = tmp_path / "state"
    take_snapshot(state_paths(store, state), compress)
    DAMAGES[damage](store, compress)

    result = repair(store, state, deep=True)

    assert result.loadable_after, result.scan.error
    assert scan_store(store, compress).loadable
    assert loaded_documents(store, compress) == clean_documents[compress]
    assert collection_metadata(store, compress) == clean_metadata[compress]
    assert result.lost_documents == []
    if not result.loadable_before:
        assert result.actions, "an unloadable store must have been repaired by some action"


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_repair_without_snapshot_loses_only_destroyed_documents(tmp_path, damage, compress, clean_documents):
    store = damaged_copy(tmp_path, damage, compress)
    DAMAGES[damage](store, compress)
    before = scan_store(store, compress)

    result = repair(store, tmp_path / "state", deep=True)

    assert result.loadable_after, result.scan.error
    loaded = loaded_documents(store, compress)
    assert set(loaded) == set(clean_documents[compress]), "every collection is back under its own name"
    missing = {(name, doc_id) for name, docs in clean_documents[compress].items() for doc_id in docs
               if doc_id not in loaded[name]}
    ext = chromem.extension(compress)
    gone_files = {f"40917930/{stem}{ext}" for stem in BYTES_GONE.get(damage, [])}
    altered = set()
    if damage == "bitflip_embedding" and compress:
        altered, gone_files = gone_files, set()  # chromem loads it: its gzip checksum is never checked
        [hazard] = [h for h in result.hazards if h["kind"] == "checksum_mismatch"]
        assert hazard["path"] in altered and "DATA CORRUPTED" in hazard["loud"]
    assert {chromem.document_stem(doc_id) for _, doc_id in missing} == {p[9:17] for p in gone_files}
    assert {d["path"] for d in result.lost_documents} == gone_files
    for name, docs in loaded.items():
        for doc_id, doc in docs.items():
            if f"40917930/{chromem.document_stem(doc_id)}{ext}" not in altered:
                assert doc == clean_documents[compress][name][doc_id]
    if damage in METADATA_DAMAGES:
        kinds = {a["action"] for a in result.actions}
        assert kinds == {"rebuilt_metadata"}, result.actions
        assert not before.loadable


def test_lost_document_ids_are_named_when_the_damaged_bytes_still_hold_them(tmp_path):
    store = damaged_copy(tmp_path, "truncated_document", False)
    DAMAGES["truncated_document"](store, False)
    result = repair(store, tmp_path / "state")
    [lost] = result.lost_documents
    assert chromem.document_stem(lost["id"]) == "d3a0e1a0"


def test_lost_document_id_comes_from_an_older_snapshot_version(tmp_path):
    """The newest snapshot already holds the damaged (empty) file; an older one revealed its id."""
    store = damaged_copy(tmp_path, "empty_document", False)
    state = tmp_path / "state"
    clean_id = chromem.read_document(store / "40917930/5628d2e7.gob").id
    take_snapshot(state_paths(store, state), False)
    DAMAGES["empty_document"](store, False)
    (store / "40917930/5628d2e7.gob").write_bytes(b"\x00" * 7)  # damaged differently, then snapshotted
    take_snapshot(state_paths(store, state), False)
    DAMAGES["empty_document"](store, False)
    result = repair(store, state)
    assert result.loadable_after
    assert result.lost_documents == [] and result.actions[0]["action"] == "restored_document"
    assert chromem.read_document(store / "40917930/5628d2e7.gob").id == clean_id
