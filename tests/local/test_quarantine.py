import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from guardian.errors import Refused, RestoreError, UsageError
from guardian.local.quarantine import ENTRY_FILE, Quarantine
from guardian.local.paths import StatePaths


@pytest.fixture
def paths(plain_store, state_dir):
    return StatePaths.for_store(plain_store, state_dir)


def a_document(store):
    return sorted(p for p in store.glob("*/*.gob") if not p.name.startswith("00000000"))[0]


def test_put_moves_file_and_records_it(paths):
    doc = a_document(paths.store)
    data = doc.read_bytes()
    rel = str(doc.relative_to(paths.store))
    entry = Quarantine(paths).put(paths.store, rel, "truncated document", source="repair")
    assert not doc.exists()
    assert entry.payload_path.read_bytes() == data
    assert entry.payload_path == paths.quarantine / entry.id / "payload" / rel
    record = json.loads((paths.quarantine / entry.id / "entry.json").read_text())
    assert record["original_path"] == rel and record["reason"] == "truncated document"
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["size"] == len(data)
    assert record["state"] == "quarantined" and record["source"] == "repair" and record["time"].endswith("Z")
    assert [e.id for e in Quarantine(paths).list()] == [entry.id]
    assert Quarantine(paths).get(entry.id).original_path == rel


def test_put_folder(paths):
    (paths.store / ".backup").mkdir()
    (paths.store / ".backup" / "a.gob").write_bytes(b"12345")
    entry = Quarantine(paths).put(paths.store, ".backup", "hidden folder chromem would load")
    assert entry.kind == "folder" and entry.size == 5 and entry.sha256 is None
    assert (entry.payload_path / "a.gob").read_bytes() == b"12345"


def test_restore_moves_back_and_keeps_the_record(paths):
    doc = a_document(paths.store)
    data = doc.read_bytes()
    q = Quarantine(paths)
    entry = q.put(paths.store, str(doc.relative_to(paths.store)), "test")
    back = q.restore(entry.id, paths.store)
    assert doc.read_bytes() == data and back.state == "restored" and back.restored_at
    assert q.get(entry.id).state == "restored"
    with pytest.raises(Refused, match="restored"):
        q.restore(entry.id, paths.store)


def test_restore_refuses_existing_destination_and_validator(paths):
    doc = a_document(paths.store)
    rel = str(doc.relative_to(paths.store))
    q = Quarantine(paths)
    entry = q.put(paths.store, rel, "test")
    doc.write_bytes(b"new one")
    with pytest.raises(Refused, match="already exists"):
        q.restore(entry.id, paths.store)
    assert doc.read_bytes() == b"new one"
    doc.unlink()

    def refuse(entry, payload):
        raise RestoreError("no")
    with pytest.raises(RestoreError):
        q.restore(entry.id, paths.store, validate=refuse)
    assert entry.payload_path.exists() and not doc.exists()


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "", "a/../../b"])
def test_unsafe_paths_refused(paths, rel):
    with pytest.raises(UsageError):
        Quarantine(paths).put(paths.store, rel, "x")


def test_unknown_id(paths):
    with pytest.raises(UsageError):
        Quarantine(paths).get("nope")
    with pytest.raises(UsageError):
        Quarantine(paths).get("../../etc")


def test_preserve_copies_and_leaves_original(paths):
    doc = a_document(paths.store)
    entry = Quarantine(paths).preserve(paths.store, str(doc.relative_to(paths.store)), "before replace")
    assert doc.exists() and entry.payload_path.read_bytes() == doc.read_bytes()


def test_interrupted_put_is_reported_honestly(paths):
    doc = a_document(paths.store)
    q = Quarantine(paths)
    entry = q.put(paths.store, str(doc.relative_to(paths.store)), "x")
    record_path = paths.quarantine / entry.id / "entry.json"
    record = json.loads(record_path.read_text())
    record["state"] = "moving"
    record_path.write_text(json.dumps(record))
    assert q.get(entry.id).state == "quarantined"       # the move had happened
    os.rename(entry.payload_path, doc)
    assert q.get(entry.id).state == "incomplete"        # the move never happened


def test_works_across_filesystems(plain_store, tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        paths = StatePaths.for_store(plain_store, mount / "state")
        doc = a_document(plain_store)
        data = doc.read_bytes()
        q = Quarantine(paths)
        entry = q.put(plain_store, str(doc.relative_to(plain_store)), "x")
        assert not doc.exists() and entry.payload_path.read_bytes() == data
        q.restore(entry.id, plain_store)
        assert doc.read_bytes() == data
        folder = next(p for p in plain_store.iterdir() if p.is_dir())
        entry = q.put(plain_store, folder.name, "folder across filesystems")
        assert not folder.exists() and (entry.payload_path / "00000000.gob").exists()
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_command_refuses_unloadable_and_restores_valid(paths, cli):
    store = paths.store
    good = a_document(store)
    q = Quarantine(paths)
    good_entry = q.put(store, str(good.relative_to(store)), "test")
    bad = sorted(p for p in store.glob("*/*.gob") if not p.name.startswith("00000000"))[-1]
    bad.write_bytes(bad.read_bytes()[:20])
    bad_entry = q.put(store, str(bad.relative_to(store)), "truncated")
    (store / ".backup").mkdir()
    (store / ".backup" / "notes.txt").write_text("x")
    folder_entry = q.put(store, ".backup", "hidden folder")

    listed = cli("quarantine", "list", "--store", str(store), "--json")
    assert listed.returncode == 0
    assert {e["id"] for e in json.loads(listed.stdout_text)} == {good_entry.id, bad_entry.id, folder_entry.id}

    refused = cli("quarantine", "restore", bad_entry.id, "--store", str(store))
    assert refused.returncode != 0 and "unloadable" in refused.stderr_text
    assert len(refused.stderr_text.strip().splitlines()) == 1 and not bad.exists()
    refused = cli("quarantine", "restore", folder_entry.id, "--store", str(store))
    assert refused.returncode != 0 and "not a chromem collection" in refused.stderr_text

    ok = cli("quarantine", "restore", good_entry.id, "--store", str(store), "--json")
    assert ok.returncode == 0, ok.stderr_text
    assert json.loads(ok.stdout_text)["state"] == "restored" and good.exists()


def test_an_unreadable_entry_is_shown_not_dropped(paths, cli, plain_store):
    quarantine = Quarantine(paths)
    good = quarantine.put(plain_store, "40917930/5628d2e7.gob", reason="test", kind="document")
    broken = Path(good.folder).parent / "20250101T000000Z-broken"
    broken.mkdir()
    (broken / ENTRY_FILE).write_text("{not json")
    entries, unreadable = quarantine.listing()
    assert [e.id for e in entries] == [good.id]
    assert [name for name, _ in unreadable] == [broken.name] and "not valid" in unreadable[0][1]
    shown = cli("quarantine", "list", "--store", str(plain_store))
    assert shown.returncode == 0 and good.id in shown.stdout_text
    assert f"quarantine entry {broken.name} is unreadable" in shown.stderr_text
    as_json = cli("quarantine", "list", "--json", "--store", str(plain_store))
    assert broken.name in as_json.stderr_text and broken.name not in as_json.stdout_text
