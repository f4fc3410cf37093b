"""A push mends what it relies on: missing or damaged objects pushed again from the local copy, damaged
records written again from the local snapshot; a listing finds rewritten objects at no cost, the
periodic read-back (or `replicate --check`) finds damage no listing shows; what cannot be mended
from this machine is named (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.replicas.test_s3_replica import guardian, push, snapshot


def setup_replica(store: Path, tmp_path: Path, encrypt: str = "0") -> tuple[Path, str, Path]:
    state, disk = tmp_path / "state", tmp_path / "disk"
    disk.mkdir()
    url = f"file://{disk / 'guardian'}?encrypt={encrypt}"
    snapshot(store, state)
    push(store, state, url)
    return state, url, disk / "guardian"


def data_files(folder: Path) -> list[Path]:
    return sorted((p for p in (folder / "data").rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)


def flip(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1:])


def verify(tmp_path: Path, url: str) -> int:
    return guardian(tmp_path / "verifier", "verify", "--from", url).returncode


def hide_from_the_listing(state: Path, folder: Path, victim: Path) -> None:
    """Make the ledger agree with the damaged object's listing: damage no listing field shows
    (a disk's bit rot under an unchanged file)."""
    [ledger] = state.glob("stores/*/replicas/*.objects.json")
    rows = json.loads(ledger.read_text())
    key = str(victim.relative_to(folder))
    info = victim.stat()
    size, _, checked = rows["objects"][key]
    rows["objects"][key] = [info.st_size, f"{info.st_mtime_ns}.{info.st_ctime_ns}.{info.st_ino}", checked]
    ledger.write_text(json.dumps(rows))


def test_a_rewritten_object_is_found_by_the_listing_and_pushed_again(plain_store, tmp_path, key_home):
    state, url, folder = setup_replica(plain_store, tmp_path, encrypt="1")
    victim = data_files(folder)[0]
    flip(victim)
    assert verify(tmp_path, url) == 1
    result = push(plain_store, state, url)
    assert result["check"]["objects_checked"] == 1                      # only the changed one is read
    assert [d["outcome"] for d in result["check"]["damaged"]] == ["pushed again"]
    assert verify(tmp_path, url) == 0
    assert push(plain_store, state, url)["check"]["objects_checked"] == 0   # nothing changed since


def test_damage_no_listing_shows_is_found_by_the_periodic_check(plain_store, tmp_path, key_home):
    state, url, folder = setup_replica(plain_store, tmp_path)
    victim = data_files(folder)[0]
    flip(victim)
    hide_from_the_listing(state, folder, victim)
    quiet = push(plain_store, state, url)
    assert quiet["check"]["objects_checked"] == 0 and verify(tmp_path, url) == 1   # not due for a week
    due = push(plain_store, state, url, env={"GUARDIAN_REPLICA_CHECK_DAYS": "0.000001"})
    assert [d["outcome"] for d in due["check"]["damaged"]] == ["pushed again"]
    assert verify(tmp_path, url) == 0
    flip(data_files(folder)[0])
    hide_from_the_listing(state, folder, data_files(folder)[0])
    checked = push(plain_store, state, url, "--check")                   # everything read back now
    assert checked["check"]["objects_checked"] >= 3 and len(checked["check"]["damaged"]) == 1
    assert verify(tmp_path, url) == 0


def test_missing_objects_and_a_damaged_record_are_put_back(plain_store, tmp_path, key_home):
    state, url, folder = setup_replica(plain_store, tmp_path)
    data_files(folder)[0].unlink()
    assert verify(tmp_path, url) == 1
    result = push(plain_store, state, url)
    assert [d["outcome"] for d in result["check"]["damaged"]] == ["pushed again"]
    assert verify(tmp_path, url) == 0
    for path in (folder / "lists").iterdir():
        path.unlink()                                                    # the object list
    result = push(plain_store, state, url)
    assert [d["outcome"] for d in result["check"]["damaged"]] == ["written again from the local snapshot"]
    assert verify(tmp_path, url) == 0
    assert len(list((folder / "lists").iterdir())) == 1              # (a store this small has no base file list)
    [record] = (folder / "snapshots").iterdir()
    record.write_bytes(b"half a record")
    result = push(plain_store, state, url)
    assert [d["outcome"] for d in result["check"]["damaged"]] == ["written again from the local snapshot"]
    assert verify(tmp_path, url) == 0
    rows = json.loads(guardian(state, "snapshots", "--from", url, "--json", check=True).stdout_text)
    assert len(rows) == 1 and "damaged" not in rows[0]


def test_damage_this_machine_cannot_mend_is_named(plain_store, tmp_path, key_home):
    state, url, folder = setup_replica(plain_store, tmp_path)
    flip(data_files(folder)[0])
    for pack in state.glob("stores/*/snapshots/packs/*.pack"):
        pack.unlink()                                                    # the local copy is gone too
    env = {"GUARDIAN_REPLICAS": url}
    proc = guardian(state, "replicate", "--store", str(plain_store), env=env)
    assert proc.returncode == 1, proc.stderr_text
    assert "NOT mended" in proc.stdout_text and "cannot be mended from this machine" in proc.stdout_text
    status = json.loads(guardian(state, "status", "--store", str(plain_store), "--json", env=env).stdout_text)
    assert any("damaged object(s) this machine cannot push again" in w for w in status["warnings"])
