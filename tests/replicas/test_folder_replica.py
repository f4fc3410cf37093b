"""Folder replicas (file:///another/disk): round trip, and full / read-only / missing targets on real
small filesystems."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import chromem_load, run_cli
from tests.replicas.test_s3_replica import guardian, one_line_error, push, snapshot, tree


def mounted(tmp_path, size: str):
    mount = tmp_path / f"fs-{size}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def small_fs(tmp_path):
    yield from mounted(tmp_path, "160k")


@pytest.fixture
def spare_fs(tmp_path):
    yield from mounted(tmp_path, "8m")


@pytest.mark.parametrize("encrypt", ["0", "1"])
def test_folder_round_trip_to_a_new_machine(gz_store, tmp_path, key_home, chromemh, encrypt):
    state = tmp_path / "state"
    url = f"file://{tmp_path / 'backup-disk' / 'guardian'}?encrypt={encrypt}"
    (tmp_path / "backup-disk").mkdir()
    first = snapshot(gz_store, state)
    assert push(gz_store, state, url)["uploaded"] == [first]
    key = tmp_path / "exported.key"
    key.write_text(run_cli("key", "export", check=True).stdout_text)
    original = tree(gz_store)
    shutil.rmtree(gz_store)
    shutil.rmtree(state)
    new_store = tmp_path / "new" / "vectorstore"
    out = guardian(tmp_path / "new-state", "restore", "--from", url, "--at", "latest", "--store", str(new_store),
                   "--key-file", str(key), "--json", check=True)
    assert json.loads(out.stdout_text)["loadable"] is True
    assert tree(new_store) == original
    assert chromem_load(chromemh, new_store, compress=True)["ok"] is True
    assert guardian(tmp_path / "new-state", "verify", "--from", url, "--key-file", str(key), "--deep").returncode == 0
    data = b"".join(p.read_bytes() for p in (tmp_path / "backup-disk").rglob("*") if p.is_file())
    if encrypt == "1":
        assert b"checkpoints" not in data and b"webapp_memories" not in data   # not even a collection name


def test_a_full_folder_target_is_one_line_and_counts_no_snapshot(plain_store, tmp_path, small_fs, key_home):
    state = tmp_path / "state"
    first = snapshot(plain_store, state)
    url = f"file://{small_fs}/replica"
    proc = guardian(state, "replicate", "--store", str(plain_store), "--to", url)
    one_line_error(proc, 8, "is full")
    rows = json.loads(guardian(state, "snapshots", "--from", url, "--json", check=True).stdout_text)
    assert rows == []
    local = json.loads(guardian(state, "snapshots", "--store", str(plain_store), "--json", check=True).stdout_text)
    assert [r["id"] for r in local] == [first]
    assert not [p for p in small_fs.rglob("*") if p.name.startswith(".guardian-tmp")]


def test_a_read_only_folder_target_is_one_line(plain_store, tmp_path, spare_fs, key_home):
    state = tmp_path / "state"
    url = f"file://{spare_fs}/replica"
    snapshot(plain_store, state)
    assert push(plain_store, state, url)["uploaded"]
    subprocess.run(["mount", "-o", "remount,ro", str(spare_fs)], check=True)
    (plain_store / "b.txt").write_text("more\n")
    snapshot(plain_store, state)
    proc = guardian(state, "replicate", "--store", str(plain_store), "--to", url)
    one_line_error(proc, 8, "read-only")


def test_a_folder_on_a_disk_that_is_not_there(plain_store, tmp_path, key_home):
    state = tmp_path / "state"
    snapshot(plain_store, state)
    proc = guardian(state, "replicate", "--store", str(plain_store), "--to", f"file://{tmp_path}/unmounted/guardian")
    one_line_error(proc, 8, "does not exist", "mount")
    proc = guardian(state, "snapshots", "--from", f"file://{tmp_path}/unmounted/guardian")
    one_line_error(proc, 8, "does not exist")
    proc = guardian(state, "replicate", "--store", str(plain_store), "--to", "ftp://example/x")
    one_line_error(proc, 8, "neither s3:// nor file://")


def test_status_shows_the_replica_and_warns_until_the_key_is_exported(plain_store, tmp_path, key_home):
    state = tmp_path / "state"
    (tmp_path / "disk").mkdir()
    url = f"file://{tmp_path / 'disk' / 'guardian'}?encrypt=1"
    env = {"GUARDIAN_REPLICAS": url}

    def status() -> dict:
        return json.loads(guardian(state, "status", "--store", str(plain_store), "--json", env=env).stdout_text)
    assert any("never pushed" in w for w in status()["warnings"])
    first = snapshot(plain_store, state)
    proc = guardian(state, "replicate", "--store", str(plain_store), "--json", env=env, check=True)
    assert json.loads(proc.stdout_text)["replicas"][0]["uploaded"] == [first]
    before = status()
    replica = before["replicas"][0]
    assert replica["remote_snapshots"] == 1 and replica["lag_seconds"] == 0 and replica["bytes_sent_total"] > 0
    assert any("key was never exported" in w for w in before["warnings"])
    run_cli("key", "export", check=True)
    after = status()
    assert not any("key" in w for w in after["warnings"])
    assert not any("replica" in w for w in after["warnings"])
    (plain_store / "new.txt").write_text("x\n")
    snapshot(plain_store, state)
    assert status()["replicas"][0]["lag_seconds"] > 0           # a local snapshot the replica lacks
    text = guardian(state, "status", "--store", str(plain_store), env=env).stdout_text
    assert "replica file://" in text and "1 snapshot," in text


def test_a_replica_listing_fits_80_columns_like_the_local_one(plain_store, tmp_path, key_home):
    state = tmp_path / "state"
    url = f"file://{tmp_path / 'backup-disk' / 'a-rather-long-folder-name-for-backups' / 'guardian'}"
    (tmp_path / "backup-disk" / "a-rather-long-folder-name-for-backups").mkdir(parents=True)
    ids = [snapshot(plain_store, state)]
    (plain_store / "b.txt").write_text("more\n")
    ids.append(snapshot(plain_store, state))
    assert push(plain_store, state, url)["uploaded"] == ids
    listed = guardian(state, "snapshots", "--from", url, check=True).stdout_text
    lines = listed.splitlines()
    command = f"restore one: guardian restore --from {url} --at ID"   # pasteable, so never wrapped
    assert command in lines and max(len(line) for line in lines if line != command) <= 80, listed
    assert [line.split()[0] for line in lines[1:3]] == ids, listed   # one row per snapshot, id first
    names = json.loads(guardian(state, "snapshots", "--from", url, "--json", check=True).stdout_text)[-1]["collections"]
    shown = " ".join(lines)
    assert len(names) >= 3 and all(name in shown for name in names)   # every collection named, wrapped


def test_a_dry_run_from_a_replica_writes_nothing_here(plain_store, tmp_path, key_home):
    state, url = tmp_path / "state", f"file://{tmp_path / 'backup-disk' / 'guardian'}"
    (tmp_path / "backup-disk").mkdir()
    first = snapshot(plain_store, state)
    assert push(plain_store, state, url)["uploaded"] == [first]
    files = len([p for p in plain_store.rglob("*") if p.is_file()])
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    # a new machine: no store, no state dir
    new_store, new_state = tmp_path / "new" / "vectorstore", tmp_path / "new-state"
    (tmp_path / "new").mkdir()
    proc = guardian(new_state, "restore", "--from", url, "--at", "latest", "--store", str(new_store),
                    "--dry-run", env=env)
    assert proc.returncode == 0, proc.stderr_text
    assert "nothing was written" in proc.stdout_text and f"{files} written" in proc.stdout_text, proc.stdout_text
    assert not new_store.exists() and not new_state.exists()
    # this machine, with the store changed since: planned from the local copy, the store untouched
    (plain_store / "b.txt").write_text("more\n")
    before = tree(plain_store)
    proc = guardian(state, "restore", "--from", url, "--at", "latest", "--store", str(plain_store),
                    "--dry-run", "--json", env=env)
    assert proc.returncode == 0, proc.stderr_text
    answer = json.loads(proc.stdout_text)
    assert answer["dry_run"] is True and answer["counts"]["move_aside"] == 1, answer
    assert tree(plain_store) == before
    assert list(scratch.iterdir()) == []   # the temporary copy (if one was needed) is gone


def test_a_folder_with_a_comma_in_guardian_replicas(plain_store, tmp_path, key_home):
    state, disk = tmp_path / "state", tmp_path / "backup,disk"
    disk.mkdir()
    (tmp_path / "other").mkdir()
    first = snapshot(plain_store, state)
    env = {"GUARDIAN_REPLICAS": f"file://{disk}/guardian,file://{tmp_path}/other/guardian"}
    proc = guardian(state, "replicate", "--store", str(plain_store), "--json", env=env, check=True)
    pushed = json.loads(proc.stdout_text)["replicas"]
    assert [r["uploaded"] for r in pushed] == [[first], [first]]
    assert (disk / "guardian" / "guardian-replica.json").is_file()
    assert not (tmp_path / "backup").exists()   # not cut at the comma


def test_a_second_store_on_one_prefix_is_refused_until_it_takes_the_replica_over(plain_store, tmp_path, key_home):
    """Two stores pushing to one prefix would mix their snapshots and prune each other's: the replica
    names its owner (an opaque id, no host or path), another store's push is one line with the way
    out, `--take-over` moves the ownership, and then the first store is the one refused."""
    url = f"file://{tmp_path / 'backup-disk' / 'guardian'}"
    (tmp_path / "backup-disk").mkdir()
    laptop, desktop = tmp_path / "laptop-state", tmp_path / "desktop-state"
    gz_store = shutil.copytree(plain_store, tmp_path / "desktop-store")   # another machine's store
    first = snapshot(plain_store, laptop)
    assert push(plain_store, laptop, url)["uploaded"] == [first]
    header = json.loads((tmp_path / "backup-disk" / "guardian" / "guardian-replica.json").read_text())
    assert [header["owner"]["id"]] == [p.read_text().strip() for p in laptop.glob("stores/*/replica-owner")]
    assert str(tmp_path) not in json.dumps(header)
    snapshot(gz_store, desktop)
    refused = guardian(desktop, "replicate", "--store", str(gz_store), "--to", url)
    one_line_error(refused, 8, "another store pushes to replica", "--take-over")
    listed = guardian(desktop, "snapshots", "--from", url, "--json", check=True)
    assert [s["id"] for s in json.loads(listed.stdout_text)] == [first]   # nothing of the desktop's
    taken = push(gz_store, desktop, url, "--take-over")
    assert len(taken["uploaded"]) == 1
    again = guardian(laptop, "replicate", "--store", str(plain_store), "--to", url)
    one_line_error(again, 8, "another store pushes to replica")
    assert push(gz_store, desktop, url)["uploaded"] == []          # the owner goes on pushing as before
