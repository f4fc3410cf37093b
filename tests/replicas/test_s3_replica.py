"""Replicas on a real S3 server (SeaweedFS on 127.0.0.1): round trip to a new machine, incremental
pushes, retention on the replica, encryption that leaks nothing, and every bad-input error."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import pytest

from tests.conftest import chromem_load, run_cli
from tests.replicas.conftest import READER

pytestmark = pytest.mark.timeout(300)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def guardian(state: Path, *args, env=None, check=False):
    return run_cli(*args, "--state-dir", str(state), env=env, timeout=240, check=check)


def push(store: Path, state: Path, url: str, *extra, env=None) -> dict:
    proc = guardian(state, "replicate", "--store", str(store), "--to", url, "--json", *extra, env=env, check=True)
    return json.loads(proc.stdout_text)["replicas"][0]


def snapshot(store: Path, state: Path, env=None) -> str:
    proc = guardian(state, "snapshot", "--store", str(store), "--json", env=env, check=True)
    return json.loads(proc.stdout_text)["id"]


def one_line_error(proc, code: int, *words: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout_text, proc.stderr_text)
    err = proc.stderr_text.strip()
    assert "\n" not in err and err.startswith("error: ") and "hint:" in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def test_round_trip_to_a_new_machine_with_no_local_state(plain_store, tmp_path, s3_url, key_home, chromemh):
    state = tmp_path / "state"
    first = snapshot(plain_store, state)
    result = push(plain_store, state, s3_url)
    assert result["uploaded"] == [first] and result["objects_sent"] >= 2 and result["lag_seconds"] == 0
    again = push(plain_store, state, s3_url)
    assert again["uploaded"] == [] and again["objects_sent"] == 0

    exported = run_cli("key", "export", check=True)
    key_copy = tmp_path / "elsewhere.key"
    key_copy.write_text(exported.stdout_text)
    assert "somewhere other than this machine" in exported.stderr_text
    original = tree(plain_store)
    shutil.rmtree(plain_store)                          # the laptop is gone: store, state and key
    shutil.rmtree(state)
    shutil.rmtree(key_home)

    new_state, new_store = tmp_path / "new-state", tmp_path / "new-machine" / "vectorstore"
    listed = guardian(new_state, "snapshots", "--from", s3_url, "--key-file", str(key_copy), "--json", check=True)
    rows = json.loads(listed.stdout_text)
    assert [r["id"] for r in rows] == [first] and rows[0]["documents"] == 90
    restored = guardian(new_state, "restore", "--from", s3_url, "--at", "latest", "--store", str(new_store),
                        "--key-file", str(key_copy), "--json", check=True)
    answer = json.loads(restored.stdout_text)
    assert answer["snapshot"] == first and answer["loadable"] is True
    assert tree(new_store) == original
    loaded = chromem_load(chromemh, new_store)
    assert loaded["ok"] is True, loaded
    assert len(loaded["collections"]) == 5

    verified = guardian(new_state, "verify", "--from", s3_url, "--key-file", str(key_copy), "--deep", "--json")
    report = json.loads(verified.stdout_text)
    assert verified.returncode == 0 and report["ok"] and report["deep"][first]["loadable"] is True


def test_incremental_push_sends_only_new_objects(plain_store, tmp_path, s3_url, key_home):
    state = tmp_path / "state"
    snapshot(plain_store, state)
    first = push(plain_store, state, s3_url)
    (plain_store / "notes.txt").write_text("one new file\n")
    second_id = snapshot(plain_store, state)
    second = push(plain_store, state, s3_url)
    assert second["uploaded"] == [second_id]
    assert second["objects_sent"] <= 3               # the new blob, the record (and at most a new list)
    assert second["objects_present"] >= 1
    assert second["bytes_sent"] < first["bytes_sent"] / 5


@pytest.mark.slow(20)
def test_retention_on_the_replica_never_drops_what_a_kept_snapshot_needs(plain_store, tmp_path, s3_url, key_home,
                                                                        seaweed, prefix):
    state = tmp_path / "state"
    env = {"GUARDIAN_KEEP_LAST": "2"}
    ids = []
    for round_ in range(3):
        (plain_store / f"round-{round_}.txt").write_text(f"round {round_}\n")
        ids.append(snapshot(plain_store, state, env))
        push(plain_store, state, s3_url, env=env)
    listed = json.loads(guardian(state, "snapshots", "--from", s3_url, "--json", check=True).stdout_text)
    assert [r["id"] for r in listed] == ids[1:]
    last = push(plain_store, state, s3_url, "--gc", env=env)
    assert last["remote_snapshots"] == 2
    verified = guardian(state, "verify", "--from", s3_url, "--json")
    assert verified.returncode == 0, verified.stdout_text
    # round-0.txt's blob is gone from the replica; every kept snapshot still restores
    for snapshot_id in ids[1:]:
        target = tmp_path / f"restore-{snapshot_id}"
        out = guardian(tmp_path / f"s-{snapshot_id}", "restore", "--from", s3_url, "--at",
                       _iso(snapshot_id), "--store", str(target), "--json", check=True)
        assert json.loads(out.stdout_text)["snapshot"] == snapshot_id


def _iso(snapshot_id: str) -> str:
    stamp = snapshot_id[:23]
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:22]}+00:00"


def test_nothing_readable_from_the_store_appears_on_the_replica(plain_store, tmp_path, s3_url, key_home,
                                                                seaweed, prefix, contents):
    state = tmp_path / "state"
    snapshot(plain_store, state)
    push(plain_store, state, s3_url)
    objects = seaweed.objects(prefix + '/')
    assert len(objects) >= 3
    haystack = b"\n".join(list(objects.values()) + [k.encode() for k in objects])
    needles = set()
    for collection in contents["collections"]:
        needles.add(collection["name"].encode())
        for doc in collection["documents"]:
            needles.add(doc["id"].encode())
            needles.add(doc["content"].encode()[:24])
            vector = json.loads(doc["embedding"]) if isinstance(doc["embedding"], str) else doc["embedding"]
            needles.add(struct.pack("<4f", *vector[:4]))
            needles.add(struct.pack(">4f", *vector[:4]))
    for path in plain_store.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            needles.add(hashlib.sha256(data).hexdigest().encode())   # the local blob names
            needles.add(data[:32])
    leaked = [n for n in needles if len(n) >= 8 and n in haystack]
    assert leaked == []


def test_a_wrong_key_or_passphrase_is_refused_before_anything_is_read(plain_store, tmp_path, s3_url, key_home):
    state = tmp_path / "state"
    snapshot(plain_store, state)
    push(plain_store, state, s3_url)
    other = tmp_path / "other.key"
    other_home = tmp_path / "other-home"
    run_cli("key", "export", "--key-file", str(other), env={"XDG_CONFIG_HOME": str(other_home)}, check=True)
    proc = guardian(tmp_path / "s2", "restore", "--from", s3_url, "--at", "latest", "--store",
                    str(tmp_path / "never"), "--key-file", str(other))
    one_line_error(proc, 8, "another key")
    assert not (tmp_path / "never").exists() or not any((tmp_path / "never").iterdir())
    proc = guardian(tmp_path / "s2", "verify", "--from", s3_url, "--key-file", str(other))
    one_line_error(proc, 8, "another key")


def test_a_passphrase_replica_round_trips(plain_store, tmp_path, s3_url, key_home):
    state = tmp_path / "state"
    env = {"GUARDIAN_REPLICA_PASSPHRASE": "correct horse battery staple"}
    first = snapshot(plain_store, state)
    push(plain_store, state, s3_url, env=env)
    assert not (key_home / "guardian" / "replica.key").exists()       # nothing stored locally
    out = guardian(tmp_path / "s2", "restore", "--from", s3_url, "--at", "latest", "--store",
                   str(tmp_path / "back"), "--json", env=env, check=True)
    assert json.loads(out.stdout_text)["snapshot"] == first
    wrong = guardian(tmp_path / "s3", "snapshots", "--from", s3_url, env={"GUARDIAN_REPLICA_PASSPHRASE": "nope"})
    one_line_error(wrong, 8, "another key")
    missing = guardian(tmp_path / "s3", "snapshots", "--from", s3_url)
    one_line_error(missing, 8, "passphrase", "GUARDIAN_REPLICA_PASSPHRASE")


def test_credentials_bucket_and_read_only_errors_are_one_line_and_lose_nothing(plain_store, tmp_path, s3_env, prefix,
                                                                               key_home):
    state = tmp_path / "state"
    first = snapshot(plain_store, state)
    url = f"s3://{s3_env.bucket}/{prefix}?endpoint={s3_env.endpoint}&path_style=1"
    wrong = guardian(state, "replicate", "--store", str(plain_store), "--to", url,
                     env={"AWS_SECRET_ACCESS_KEY": "wrong-secret"})
    one_line_error(wrong, 8, "refused the credentials")
    unknown = guardian(state, "replicate", "--store", str(plain_store), "--to", url,
                       env={"AWS_ACCESS_KEY_ID": "AKIDNOBODY"})
    one_line_error(unknown, 8, "refused the credentials")
    nobucket = guardian(state, "replicate", "--store", str(plain_store), "--to",
                        f"s3://guardian-missing-bucket/p?endpoint={s3_env.endpoint}&path_style=1")
    one_line_error(nobucket, 8, "does not exist", "create the bucket")
    reader = guardian(state, "replicate", "--store", str(plain_store), "--to", url,
                      env={"AWS_ACCESS_KEY_ID": READER[0], "AWS_SECRET_ACCESS_KEY": READER[1]})
    one_line_error(reader, 8, "denied")
    down = guardian(state, "replicate", "--store", str(plain_store), "--to", "s3://b/p?endpoint=http://127.0.0.1:9&path_style=1")
    one_line_error(down, 8, "cannot be reached")
    listed = json.loads(guardian(state, "snapshots", "--store", str(plain_store), "--json", check=True).stdout_text)
    assert [r["id"] for r in listed] == [first]
    status_files = list((state / "stores").glob("*/replicas/*.json"))
    assert status_files and all("wrong-secret" not in p.read_text() and "guardian-test-secret" not in p.read_text()
                                for p in status_files)


def test_a_tampered_object_is_caught_by_verify_and_restore_takes_only_what_is_intact(plain_store, tmp_path, s3_url,
                                                                                      key_home, seaweed, prefix):
    state = tmp_path / "state"
    first = snapshot(plain_store, state)
    original = tree(plain_store)
    push(plain_store, state, s3_url)
    client = seaweed.client()
    data_keys = sorted(k for k in seaweed.objects(prefix + '/') if "/data/" in k)
    victim = data_keys[len(data_keys) // 2]
    body = client.get_object(Bucket=seaweed.bucket, Key=victim)["Body"].read()
    client.put_object(Bucket=seaweed.bucket, Key=victim, Body=body[:-1] + bytes([body[-1] ^ 0xFF]))
    verified = guardian(state, "verify", "--from", s3_url, "--json")
    report = json.loads(verified.stdout_text)
    assert verified.returncode == 8 and not report["ok"]   # a tampered replica object: ExitCode.REPLICA
    assert report["affected_snapshots"].keys() == {first}
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    # the last byte is the object's trailer: every unit in it still authenticates, nothing is lost
    proc = guardian(tmp_path / "s2", "restore", "--from", s3_url, "--at", "latest", "--store", str(target), "--force")
    assert proc.returncode == 0 and "unit index is damaged" in proc.stderr_text, proc.stderr_text
    assert tree(target) == original
    # a record that is garbage is listed as damaged, never used
    client.put_object(Bucket=seaweed.bucket, Key=f"{prefix}/snapshots/{first[:-4]}ffff", Body=b"half a record")
    rows = json.loads(guardian(state, "snapshots", "--from", s3_url, "--json", check=True).stdout_text)
    assert [("damaged" in r) for r in rows] == [False, True]
