"""`check --repair` brings back a collection contextd's own recovery moved to .quarantine/<hash>/: the
store as the real chromem wrote it, contextd's move reproduced on disk, the real loader counting after."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.local.paths import StatePaths
from guardian.local.quarantine import Quarantine
from guardian.snapshots.take import take_snapshot
from tests.conftest import ROOT, chromem_load
from tests.contextd_recovery import resilient_load

MEMORIES, REMEDIATIONS = "40917930", "beff316c"   # webapp_memories (40, metadata {}), remediations_org_alice (12)
RUNNER = Path(__file__).with_name("crash_runner.py")


def dump(chromemh: Path, store: Path) -> dict[str, dict]:
    """What the real chromem holds: collection name -> {"metadata", "docs": {id: content}}."""
    proc = subprocess.run([str(chromemh), "dump", str(store), "0"], capture_output=True, timeout=300, check=True)
    answer = json.loads(proc.stdout)
    assert answer["ok"], answer["error"]
    return {c["name"]: {"metadata": c["metadata"], "docs": {d["id"]: d["content"] for d in c["documents"]}}
            for c in answer["collections"]}


def incident(chromemh: Path, store: Path, folder: str) -> None:
    """A collection's metadata file goes; contextd starts and moves the folder aside."""
    (store / folder / "00000000.gob").unlink()
    moved, verdict = resilient_load(chromemh, store)
    assert moved == [folder] and verdict["ok"]


def test_a_collection_contextd_moved_aside_comes_back_with_its_metadata_from_a_snapshot(plain_store, chromemh, cli,
                                                                                        state_dir):
    before = dump(chromemh, plain_store)
    take_snapshot(StatePaths.for_store(plain_store, state_dir), False)
    incident(chromemh, plain_store, REMEDIATIONS)
    assert "remediations_org_alice" not in dump(chromemh, plain_store)
    assert cli("check", "--store", str(plain_store)).returncode == 1
    done = cli("check", "--store", str(plain_store), "--repair", "--json")
    report = json.loads(done.stdout_text)
    assert done.returncode == 0, done.stdout_text
    [action] = report["actions"]
    assert action["action"] == "restored_hidden_collection" and action["path"] == REMEDIATIONS and action["ok"]
    assert action["from_path"] == f".quarantine/{REMEDIATIONS}" and "snapshot" in action["source"]
    assert dump(chromemh, plain_store) == before          # every memory back, the collection metadata too
    assert not (plain_store / ".quarantine" / REMEDIATIONS).exists()
    [entry] = Quarantine(StatePaths.for_store(plain_store, state_dir)).list()
    assert entry.original_path == f".quarantine/{REMEDIATIONS}" and entry.kind == "folder"
    assert len([n for n in os.listdir(entry.payload_path) if n.endswith(".gob")]) == 12
    again = cli("check", "--store", str(plain_store))
    assert again.returncode == 0 and "no problems found" in again.stdout_text


def test_without_a_snapshot_the_metadata_is_rebuilt_from_the_name_the_hash_confirms(plain_store, chromemh, cli):
    before = dump(chromemh, plain_store)
    incident(chromemh, plain_store, MEMORIES)
    done = cli("check", "--store", str(plain_store), "--repair")
    assert done.returncode == 0, done.stdout_text
    assert "'webapp_memories' from documents" in done.stdout_text
    assert dump(chromemh, plain_store) == before


def test_a_collection_contextd_created_again_meanwhile_is_merged_never_overwritten(plain_store, chromemh, cli,
                                                                                  tmp_path):
    """After the move contextd saves new memories: the collection folder exists again, with new documents,
    and one of them rewrites a moved document's id (a later update). Everything old comes back, nothing new
    is replaced, and the moved copy of the rewritten one is kept in the quarantine."""
    before = dump(chromemh, plain_store)
    incident(chromemh, plain_store, MEMORIES)
    hidden = plain_store / ".quarantine" / MEMORIES
    subprocess.run([str(chromemh), "writer", str(plain_store), "0", "webapp_memories", "3", "0", "11"],
                   check=True, capture_output=True, timeout=120)
    updated_id = next(iter(before["webapp_memories"]["docs"]))
    spec = [{"name": "webapp_memories", "metadata": {},
             "docs": [{"id": updated_id, "content": "updated after the move", "metadata": {"project_id": "webapp"},
                       "embedding": [1.0] + [0.0] * 383}]}]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    subprocess.run([str(chromemh), "gen", str(tmp_path / "spec.json"), str(tmp_path / "gen"), "0"], check=True,
                   capture_output=True, timeout=120)
    updated = next(p for p in (tmp_path / "gen" / MEMORIES).iterdir() if p.name != "00000000.gob")
    assert (hidden / updated.name).exists()
    shutil.copy(updated, plain_store / MEMORIES / updated.name)   # contextd's later write of that id
    new = dump(chromemh, plain_store)["webapp_memories"]["docs"]
    assert len(new) == 4
    metadata_bytes = (plain_store / MEMORIES / "00000000.gob").read_bytes()

    done = cli("check", "--store", str(plain_store), "--repair", "--json")
    assert done.returncode == 0, done.stdout_text
    [action] = json.loads(done.stdout_text)["actions"]
    assert "39 document(s) brought back" in action["detail"]
    assert "1 kept as the collection holds them" in action["detail"]
    after = dump(chromemh, plain_store)["webapp_memories"]["docs"]
    assert after == {**before["webapp_memories"]["docs"], **new}
    assert after[updated_id] == "updated after the move"
    assert (plain_store / MEMORIES / "00000000.gob").read_bytes() == metadata_bytes   # contextd's own, untouched


@pytest.mark.parametrize("kill_after", [1, 17, 40])
def test_killed_while_bringing_back_the_store_still_loads_and_nothing_is_lost(plain_store, chromemh, state_dir,
                                                                             kill_after):
    before = dump(chromemh, plain_store)
    incident(chromemh, plain_store, MEMORIES)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(RUNNER), str(plain_store), str(state_dir), "0.01", "place"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout.readline().strip() == b"started"
    for _ in range(kill_after + 1):   # the metadata file, then that many documents
        assert proc.stdout.readline().strip() == b"place"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert chromem_load(chromemh, plain_store)["ok"]                       # loadable at every kill point
    assert len(list((plain_store / ".quarantine" / MEMORIES).glob("*.gob"))) == 40   # not moved before the end
    assert 0 < len(list((plain_store / MEMORIES).glob("*.gob"))) <= kill_after + 1
    done = run_cli_repair(plain_store, state_dir)
    assert done.returncode == 0, done.stdout
    assert dump(chromemh, plain_store) == before
    assert not (plain_store / ".quarantine" / MEMORIES).exists()


def run_cli_repair(store: Path, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guardian", "check", "--repair", "--store", str(store)],
                          env=dict(os.environ, GUARDIAN_STATE_DIR=str(state)), capture_output=True, text=True,
                          timeout=120)


def test_what_is_not_contextds_or_cannot_go_back_is_reported_and_left_alone(plain_store, chromemh, cli):
    backup = plain_store / "backup"
    backup.mkdir()
    shutil.copytree(plain_store / "6c7f5464", backup / "6c7f5464")    # a copy of a loaded collection
    incident(chromemh, plain_store, MEMORIES)
    (plain_store / MEMORIES).write_bytes(b"")     # something else where the collection would go back
    done = cli("check", "--store", str(plain_store), "--repair", "--json")
    report = json.loads(done.stdout_text)
    assert done.returncode == 1 and report["actions"] == [a for a in report["actions"] if a["path"] != MEMORIES]
    hazards = {h["path"]: h for h in report["hazards"] if h["kind"] == "hidden_documents"}
    assert set(hazards) == {"backup/6c7f5464", f".quarantine/{MEMORIES}"}
    assert "move it back to the store root as its <hash> folder" in hazards["backup/6c7f5464"]["hint"]
    assert "DATA HIDDEN" in hazards[f".quarantine/{MEMORIES}"]["loud"]
    assert len(list((plain_store / ".quarantine" / MEMORIES).glob("*.gob"))) == 40
    assert len(list((backup / "6c7f5464").glob("*.gob"))) == 9


def test_in_a_gz_store_moved_by_hand_the_documents_come_back_in_the_stores_format(gz_store, chromemh, cli):
    """contextd's loader never moves a gz folder (it looks for .gob names); the same layout made by hand comes
    back too, a document found in the other format rewrapped (same gob, gzip around it)."""
    from guardian.format import chromem

    before = chromem_load(chromemh, gz_store, True)["collections"]
    (gz_store / MEMORIES / "00000000.gob.gz").unlink()
    assert resilient_load(chromemh, gz_store, True)[0] == []     # contextd itself leaves it (and fails to start)
    (gz_store / ".quarantine").mkdir()
    (gz_store / MEMORIES).rename(gz_store / ".quarantine" / MEMORIES)
    for path in sorted((gz_store / ".quarantine" / MEMORIES).glob("*.gob.gz"))[:3]:
        path.with_name(path.name[:-3]).write_bytes(chromem.gob_stream(path.read_bytes()))
        path.unlink()
    done = cli("check", "--store", str(gz_store), "--repair")
    assert done.returncode == 0, done.stdout_text
    assert chromem_load(chromemh, gz_store, True)["collections"] == before
    assert not list((gz_store / MEMORIES).glob("*.gob"))
