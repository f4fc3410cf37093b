"""A replica with a bad byte (issue 23, item 6): one byte flipped in the largest object of a real
replica of a store the real chromem wrote costs only the documents whose bytes it touches. A
restore on a new machine brings back every other one into a store chromem loads, names what is
missing and exits 1; a failed restore leaves no store folder behind; the next push from the healthy
machine pushes the damaged object again, after which `verify --from` passes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from guardian.format import chromem as codec
from guardian.snapshots.packs import read_index
from guardian.snapshots.repository import Repository
from tests.conftest import chromem_load
from tests.replicas.test_s3_replica import guardian, push, snapshot, tree

pytestmark = pytest.mark.timeout(300)

DOCUMENTS = 1385          # the store of the report: 1,385 documents in five collections


def synth_store(chromemh: Path, path: Path, documents: int = DOCUMENTS, collections: int = 5) -> Path:
    """A store written by the real chromem-go (``chromemh synth``)."""
    subprocess.run([str(chromemh), "synth", str(path), str(documents), "384", "0", str(collections)],
                   check=True, capture_output=True, timeout=120)
    return path


def documents_loaded(chromemh: Path, store: Path) -> int:
    loaded = chromem_load(chromemh, store)
    assert loaded["ok"] is True, loaded
    return sum(c["count"] for c in loaded["collections"].values())


def flip_middle_byte(data: bytes) -> bytes:
    return flip_at(data, len(data) // 2)


def largest_data_file(folder: Path) -> Path:
    return max((p for p in (folder / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def restore_on_a_new_machine(tmp_path: Path, url: str, name: str):
    store = tmp_path / name / "vectorstore"
    proc = guardian(tmp_path / f"{name}-state", "restore", "--from", url, "--at", "latest", "--store", str(store),
                    "--json")
    return proc, store


def check_restored_despite_the_bad_byte(tmp_path, chromemh, url, original: dict[str, bytes]) -> list[str]:
    """The restore after the flip: everything but what the byte touched, loadable, named, exit 1."""
    proc, store = restore_on_a_new_machine(tmp_path, url, "new-machine")
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr_text)
    answer = json.loads(proc.stdout_text)
    missing = answer["missing"]
    assert len(missing) <= 1, missing                         # one byte touches one document at most
    assert proc.returncode == (1 if missing else 0)
    assert answer["loadable"] is True and answer["fetch"]["damaged_objects"]
    restored = tree(store)
    assert set(restored) == set(original) - set(missing)
    assert all(restored[path] == original[path] for path in restored)     # byte for byte
    assert documents_loaded(chromemh, store) == DOCUMENTS - len(missing)
    print(f"documents restored after one flipped byte: {DOCUMENTS - len(missing)} of {DOCUMENTS} ({url})")
    return missing


def check_mended(tmp_path, store, state, url, original) -> None:
    """The next push from the healthy machine pushes the damaged object again; verify passes; a new
    machine restores everything."""
    result = push(store, state, url)
    damaged = result["check"]["damaged"]
    assert len(damaged) == 1 and damaged[0]["outcome"] == "pushed again", result["check"]
    verified = guardian(tmp_path / "verifier-state", "verify", "--from", url, "--json")
    assert verified.returncode == 0, verified.stdout_text
    proc, again = restore_on_a_new_machine(tmp_path, url, "third-machine")
    assert proc.returncode == 0, proc.stderr_text
    assert tree(again) == original


@pytest.mark.slow(30)
@pytest.mark.parametrize("encrypt", ["0", "1"])
def test_a_bad_byte_in_a_folder_replica_costs_one_document_and_the_next_push_mends_it(tmp_path, key_home, chromemh,
                                                                                       encrypt):
    store, state = synth_store(chromemh, tmp_path / "store"), tmp_path / "state"
    original = tree(store)
    (tmp_path / "backup-disk").mkdir()
    url = f"file://{tmp_path / 'backup-disk' / 'guardian'}?encrypt={encrypt}"
    snapshot(store, state)
    push(store, state, url)
    victim = largest_data_file(tmp_path / "backup-disk" / "guardian")
    victim.write_bytes(flip_middle_byte(victim.read_bytes()))            # a failing backup disk
    check_restored_despite_the_bad_byte(tmp_path, chromemh, url, original)
    check_mended(tmp_path, store, state, url, original)


@pytest.mark.slow(30)
def test_a_bad_byte_in_an_s3_replica_costs_one_document_and_the_next_push_mends_it(tmp_path, key_home, chromemh,
                                                                                    s3_url, seaweed, prefix):
    store, state = synth_store(chromemh, tmp_path / "store"), tmp_path / "state"
    original = tree(store)
    snapshot(store, state)
    push(store, state, s3_url)
    client = seaweed.client()
    listed = client.list_objects_v2(Bucket=seaweed.bucket, Prefix=f"{prefix}/data/")["Contents"]
    victim = max(listed, key=lambda item: item["Size"])["Key"]
    body = client.get_object(Bucket=seaweed.bucket, Key=victim)["Body"].read()
    client.put_object(Bucket=seaweed.bucket, Key=victim, Body=flip_middle_byte(body))
    check_restored_despite_the_bad_byte(tmp_path, chromemh, s3_url, original)
    check_mended(tmp_path, store, state, s3_url, original)


def test_a_failed_restore_from_a_replica_leaves_no_store_folder(plain_store, tmp_path, key_home):
    state = tmp_path / "state"
    first = snapshot(plain_store, state)
    (tmp_path / "disk").mkdir()
    url = f"file://{tmp_path / 'disk' / 'guardian'}"
    push(plain_store, state, url)
    (tmp_path / "disk" / "guardian" / "snapshots" / first).write_bytes(b"half a record")
    new_store = tmp_path / "new-machine" / "vectorstore"
    proc = guardian(tmp_path / "new-state", "restore", "--from", url, "--at", "latest", "--store", str(new_store))
    assert proc.returncode == 8 and "damaged" in proc.stderr_text, proc.stderr_text
    assert not new_store.exists() and not new_store.parent.exists()


def test_a_damaged_document_comes_back_as_its_older_copy(plain_store, tmp_path, key_home, chromemh):
    """The byte hits the only object holding a document's newest version: the intact copy an older
    snapshot holds is restored instead (named, exit 1), everything else as it is now."""
    state, disk = tmp_path / "state", tmp_path / "disk"
    disk.mkdir()
    url = f"file://{disk / 'guardian'}?encrypt=1"
    first = snapshot(plain_store, state)
    push(plain_store, state, url)
    older = tree(plain_store)
    document = sorted(p for p in plain_store.rglob("*.gob") if not p.name.startswith("00000000"))[0]
    rel = str(document.relative_to(plain_store))
    edited = codec.decode_document(document.read_bytes())
    edited.content += " (edited later)"
    document.write_bytes(codec.encode_document(edited))
    newest = tree(plain_store)
    before = {p for p in (disk / "guardian" / "data").rglob("*") if p.is_file()}
    snapshot(plain_store, state)
    push(plain_store, state, url)
    [added] = [p for p in (disk / "guardian" / "data").rglob("*") if p.is_file() and p not in before]
    added.write_bytes(flip_middle_byte(added.read_bytes()))
    proc, store = restore_on_a_new_machine(tmp_path, url, "new-machine")
    answer = json.loads(proc.stdout_text)
    assert proc.returncode == 1 and answer["missing"] == [], proc.stderr_text
    assert answer["fetch"]["older_copies"] == {rel: first}
    restored = tree(store)
    assert restored == {**newest, rel: older[rel]}
    assert documents_loaded(chromemh, store) == 90


def flip_blob_in_plain_replica(state: Path, folder: Path, digest: str) -> None:
    """Flip a byte in the middle of blob ``digest``'s frame, in the (plain) replica's copy of its pack."""
    [snapshots] = state.glob("stores/*/snapshots")
    for pack in (snapshots / "packs").glob("*.pack"):
        for found, offset, length, _ in read_index(pack):
            if found == digest:
                victim = folder / "data" / "packs" / pack.name
                data = victim.read_bytes()
                victim.write_bytes(flip_at(data, offset + length // 2))
                return
    raise AssertionError(f"no pack holds {digest}")


def flip_at(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]


def local_manifest(state: Path, snapshot_id: str):
    [snapshots] = state.glob("stores/*/snapshots")
    return Repository(snapshots).read_manifest(snapshot_id)


def test_a_bad_byte_in_the_base_file_list_costs_nothing(tmp_path, key_home, chromemh):
    """Every file of a snapshot depends on its manifest's base file list: the replica keeps a second
    copy of it, so a bad byte in the first costs no document."""
    store, state = synth_store(chromemh, tmp_path / "store", documents=600, collections=2), tmp_path / "state"
    original = tree(store)
    (tmp_path / "disk").mkdir()
    url = f"file://{tmp_path / 'disk' / 'guardian'}"
    first = snapshot(store, state)
    push(store, state, url)
    files_dict = local_manifest(state, first).files_dict
    assert files_dict
    flip_blob_in_plain_replica(state, tmp_path / "disk" / "guardian", files_dict)
    proc, restored = restore_on_a_new_machine(tmp_path, url, "new-machine")
    assert proc.returncode == 0, proc.stderr_text
    assert json.loads(proc.stdout_text)["fetch"]["damaged_objects"]
    assert tree(restored) == original


def test_a_bad_byte_in_a_collection_metadata_file_rebuilds_it_from_the_recorded_name(tmp_path, key_home, chromemh):
    store, state = synth_store(chromemh, tmp_path / "store", documents=200, collections=2), tmp_path / "state"
    (tmp_path / "disk").mkdir()
    url = f"file://{tmp_path / 'disk' / 'guardian'}"
    first = snapshot(store, state)
    push(store, state, url)
    manifest = local_manifest(state, first)
    metadata = min((e for e in manifest.files if e.path.endswith("/00000000.gob")), key=lambda e: e.path)
    name = {c.dir: c.name for c in manifest.collections}[metadata.path.split("/")[0]]
    flip_blob_in_plain_replica(state, tmp_path / "disk" / "guardian", metadata.hash)
    proc, restored = restore_on_a_new_machine(tmp_path, url, "new-machine")
    answer = json.loads(proc.stdout_text)
    assert proc.returncode == 1 and answer["missing"] == [] and answer["fetch"]["rebuilt"] == [metadata.path]
    loaded = chromem_load(chromemh, restored)
    assert loaded["ok"] is True and sum(c["count"] for c in loaded["collections"].values()) == 200
    assert loaded["collections"][name]["metadata"] in ({}, None)      # its collection metadata map is lost


def test_a_damaged_newest_record_restores_the_one_before_until_the_next_push_writes_it_again(plain_store, tmp_path,
                                                                                            key_home):
    state, disk = tmp_path / "state", tmp_path / "disk"
    disk.mkdir()
    url = f"file://{disk / 'guardian'}"
    first = snapshot(plain_store, state)
    older = tree(plain_store)
    (plain_store / "notes.txt").write_text("written later\n")
    second = snapshot(plain_store, state)
    push(plain_store, state, url)
    (disk / "guardian" / "snapshots" / second).write_bytes(b"half a record")
    proc, store = restore_on_a_new_machine(tmp_path, url, "new-machine")
    assert proc.returncode == 0 and "passed over 1 newer snapshot(s) whose record" in proc.stderr_text
    assert json.loads(proc.stdout_text)["snapshot"] == first and tree(store) == older
    push(plain_store, state, url)                                       # writes the record again
    proc, store = restore_on_a_new_machine(tmp_path, url, "another-machine")
    assert proc.returncode == 0 and json.loads(proc.stdout_text)["snapshot"] == second
    assert tree(store) == tree(plain_store)
