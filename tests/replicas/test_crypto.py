"""Client-side encryption: AES-256-GCM objects, keyed-hash names, key file and passphrase keys."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from guardian.errors import ReplicaError
from guardian.replicas import crypto


def test_sealed_objects_round_trip_and_hide_the_plaintext():
    sealer = crypto.Sealer(os.urandom(32))
    data = b"the content of a memory " * 50
    blob = sealer.seal("data/ab/x", data)
    assert data[:24] not in blob
    assert sealer.open("data/ab/x", blob) == data
    assert sealer.seal("data/ab/x", data) != blob          # a fresh nonce every time


@pytest.mark.parametrize("damage", ["flip", "truncate", "swap", "wrong_key"])
def test_any_change_fails_authentication(damage):
    sealer = crypto.Sealer(os.urandom(32))
    blob = sealer.seal("data/ab/x", b"payload" * 100)
    name = "data/ab/x"
    if damage == "flip":
        blob = blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:]
    elif damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "swap":
        name = "data/cd/y"        # the object moved under another name
    else:
        sealer = crypto.Sealer(os.urandom(32))
    with pytest.raises(ReplicaError, match="tampered|authentication"):
        sealer.open(name, blob)


def test_names_are_keyed_hashes_that_do_not_reveal_the_content_hash():
    digest = "9f" * 32
    rel = f"blobs/9f/{digest}.zst"
    a, b = crypto.Sealer(os.urandom(32)), crypto.Sealer(os.urandom(32))
    assert digest not in a.name(rel) and a.name(rel) != b.name(rel) and a.name(rel) == a.name(rel)
    assert len(a.name(rel)) == 64


def test_key_file_is_created_0600_once_even_by_racing_processes(tmp_path):
    path = tmp_path / "cfg" / "guardian" / "replica.key"
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(crypto.create_key_file(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert crypto.read_key_file(path) == keys[0]
    assert [p.name for p in path.parent.iterdir()] == ["replica.key"]   # no temp file left


def test_bad_and_missing_key_files_are_one_line_errors(tmp_path):
    with pytest.raises(ReplicaError, match="no replica key"):
        crypto.read_key_file(tmp_path / "absent")
    (tmp_path / "bad").write_text("not a key\n")
    with pytest.raises(ReplicaError, match="not a guardian replica key"):
        crypto.read_key_file(tmp_path / "bad")


def test_passphrase_keys_come_from_scrypt_with_the_replica_salt():
    salt = b"s" * 16
    params = {"n": 2 ** 14, "r": 8, "p": 1}
    key = crypto.passphrase_key("correct horse", salt, params)
    assert key == crypto.passphrase_key("correct horse", salt, params)
    assert key != crypto.passphrase_key("correct horse", b"t" * 16, params)
    assert key != crypto.passphrase_key("wrong horse", salt, params)
