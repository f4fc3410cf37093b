"""Pre-flight end to end: the incident, idempotency, dry runs, the CLI, alerts, quarantine records."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from guardian.format import chromem
from guardian.local.quarantine import Quarantine
from guardian.commands.check_cmd import render_report
from guardian.repair.preflight import alert_events
from guardian.snapshots.take import take_snapshot
from guardian.store.scan import scan_store
from tests.conftest import STORE_PLAIN, copy_store
from tests.damage import DAMAGES
from tests.repair.helpers_repair import loaded_documents, repair, state_paths, tree_bytes


def build_incident_store(root):
    """contextd's `contextd_memories` collection (folder e9f85bf6) with documents tagged project_id=contextd."""
    folder = root / chromem.collection_dir_name("contextd_memories")
    folder.mkdir(parents=True)
    (folder / "00000000.gob").write_bytes(chromem.encode_collection("contextd_memories", {}))
    rng = np.random.default_rng(7)
    for i in range(12):
        doc_id = f"mem-{i:04d}"
        vector = rng.standard_normal(16).astype(np.float32)
        doc = chromem.Document(doc_id, {"id": doc_id, "project_id": "contextd", "tenant_id": "dusti",
                                        "title": f"lesson {i}"}, vector / np.linalg.norm(vector), f"lesson {i}")
        (folder / f"{chromem.document_stem(doc_id)}.gob").write_bytes(chromem.encode_document(doc))
    return folder


def test_incident_replayed_rebuilds_contextd_memories_with_no_snapshot_and_no_catalog(tmp_path):
    store = tmp_path / "store"
    folder = build_incident_store(store)
    assert folder.name == "e9f85bf6"
    expected = loaded_documents(store, False)
    (folder / "00000000.gob").unlink()
    state = tmp_path / "state"
    assert not (state_paths(store, state).catalog_file).exists()

    result = repair(store, state)

    assert not result.loadable_before and result.loadable_after
    [action] = result.actions
    assert action["action"] == "rebuilt_metadata" and action["name"] == "contextd_memories"
    assert action["metadata"] == {} and "documents" in action["source"]
    assert loaded_documents(store, False) == expected
    assert any("EMPTY collection metadata" in note for note in result.notes)


def test_repeated_repair_is_a_no_op(tmp_path):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    for damage in ("missing_metadata", "several_empty_documents", "hidden_backup_dir", "wrong_format_file"):
        DAMAGES[damage](store, False)
    first = repair(store, tmp_path / "state")
    assert first.loadable_after and len(first.actions) >= 6
    after_first = tree_bytes(store)
    quarantined = len(Quarantine(state_paths(store, tmp_path / "state")).list())

    second = repair(store, tmp_path / "state")

    assert second.actions == [] and second.plans == []
    assert tree_bytes(store) == after_first
    assert len(Quarantine(state_paths(store, tmp_path / "state")).list()) == quarantined


def test_dry_run_changes_nothing_and_shows_the_plan(tmp_path):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    DAMAGES["orphan_docs_two_collections"](store, False)
    DAMAGES["empty_document"](store, False)
    before = tree_bytes(store)

    result = repair(store, tmp_path / "state", dry_run=True)

    assert tree_bytes(store) == before
    assert {(a["action"], a["path"]) for a in result.actions} == {
        ("rebuilt_metadata", "40917930/00000000.gob"), ("rebuilt_metadata", "6c7f5464/00000000.gob"),
        ("quarantined", "40917930/5628d2e7.gob")}
    assert result.exit_code == 3 and not result.loadable_after
    assert "dry run" in render_report(result)


def test_replaced_files_are_kept_in_quarantine_with_path_time_and_reason(tmp_path):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    state = tmp_path / "state"
    take_snapshot(state_paths(store, state), False)
    DAMAGES["truncated_metadata"](store, False)
    damaged = (store / "40917930/00000000.gob").read_bytes()

    result = repair(store, state)

    [action] = result.actions
    assert action["action"] == "restored_metadata" and action["source"].startswith("snapshot ")
    [entry] = Quarantine(state_paths(store, state)).list()
    assert entry.original_path == "40917930/00000000.gob" and entry.reason and entry.time
    assert entry.payload_path.read_bytes() == damaged
    assert not str(entry.payload_path).startswith(str(store))
    assert (store / "40917930/00000000.gob").stat().st_mode & 0o777 == 0o644


def test_unrecoverable_name_quarantines_the_folder_loudly(tmp_path):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    DAMAGES["missing_metadata"](store, False)
    for path in (store / "40917930").iterdir():  # documents that say nothing about their collection
        doc = chromem.read_document(path)
        doc.metadata = {}
        path.write_bytes(chromem.encode_document(doc))

    result = repair(store, tmp_path / "state")

    assert result.loadable_after and not (store / "40917930").exists()
    [unresolved] = result.unresolved
    assert unresolved["kind"] == "name_unrecoverable" and "quarantine" in unresolved["detail"]
    assert "--name" in unresolved["hint"] and unresolved["loud"]
    assert result.exit_code == 1
    assert [e for e, _ in alert_events(result)] == ["corruption_found", "repair_done", "repair_impossible"]


def test_a_name_given_on_the_command_line_recovers_the_folder(tmp_path):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    DAMAGES["missing_metadata"](store, False)
    for path in (store / "40917930").iterdir():
        doc = chromem.read_document(path)
        doc.metadata = {}
        path.write_bytes(chromem.encode_document(doc))
    result = repair(store, tmp_path / "state", names=["not_it", "webapp_memories"])
    [action] = result.actions
    assert action["name"] == "webapp_memories" and "flag" in action["source"]


def test_catalog_names_from_an_earlier_scan_are_candidates(tmp_path):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    state = tmp_path / "state"
    assert repair(store, state).actions == []  # the healthy scan feeds the catalog
    DAMAGES["missing_metadata"](store, False)
    for path in (store / "40917930").iterdir():
        doc = chromem.read_document(path)
        doc.metadata = {}
        path.write_bytes(chromem.encode_document(doc))
    [action] = repair(store, state).actions
    assert action["name"] == "webapp_memories" and "catalog" in action["source"]


def test_hazards_are_reported_not_fixed(tmp_path):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    DAMAGES["duplicate_name"](store, False)
    before = tree_bytes(store)
    result = repair(store, tmp_path / "state")
    assert result.actions == [] and tree_bytes(store) == before
    [hazard] = [h for h in result.hazards if h["kind"] == "duplicate_name"]
    assert hazard["loud"].startswith("DATA HIDDEN") and hazard["hint"]
    assert result.exit_code == 1


def test_healthy_store_alerts_nothing(tmp_path):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    result = repair(store, tmp_path / "state")
    assert result.exit_code == 0 and alert_events(result) == [] and result.ok and not result.repaired


@pytest.mark.parametrize("dry_run", [False, True])
def test_cli_check_repair_json(cli, tmp_path, state_dir, dry_run):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    DAMAGES["missing_metadata"](store, False)
    args = ["check", "--store", str(store), "--repair", "--json"] + (["--dry-run"] if dry_run else [])
    proc = cli(*args)
    report = json.loads(proc.stdout_text)
    assert report["actions"][0]["action"] == "rebuilt_metadata"
    assert report["loadable_before"] is False and report["dry_run"] is dry_run
    assert proc.returncode == (3 if dry_run else 0), proc.stderr_text
    assert scan_store(store).loadable is (not dry_run)
    check = cli("check", "--store", str(store), "--json")
    assert check.returncode == (3 if dry_run else 0)


def test_the_final_scan_keeps_its_listings_when_asked_and_they_show_the_repaired_store(tmp_path):
    """`guardian run` builds its index on the start-up pre-flight's listings: after a repair they must
    be the final scan's (the repaired store), never the first scan's."""
    from guardian.store.scan import FolderListing

    store = copy_store(STORE_PLAIN, tmp_path / "store")
    folder = build_incident_store(tmp_path / "incident")
    target = store / folder.name
    os.rename(folder, target)
    (target / "00000000.gob").unlink()           # repairable: the metadata file is rebuilt

    assert repair(store, tmp_path / "state").scan.listings is None   # not asked: nothing kept
    (target / "00000000.gob").unlink()
    result = repair(store, tmp_path / "state", keep_listings=True)
    assert result.actions and result.loadable_after
    assert result.scan_before.listings is None                        # the store changed since it
    listings = result.scan.take_listings()
    assert sorted(listings) == sorted(p.name for p in store.iterdir() if p.is_dir())
    assert "00000000.gob" in listings[target.name].names().split("\0")
    assert listings[target.name].digest() == FolderListing.read(str(target)).digest()
    assert result.scan.listings is None                               # handed over once
