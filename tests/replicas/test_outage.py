"""Faults on a real S3 server: guardian killed -9 mid-push, the server stopped under a running
sidecar, a restore killed mid-fetch. Kill points follow the work's progress, never the clock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import run_cli
from tests.replicas.test_s3_replica import guardian, push, snapshot, tree
from tests.waiting import wait_for

pytestmark = [pytest.mark.timeout(400), pytest.mark.slow(20)]

CHILD = """
import os, sys, time
open(sys.argv[1], "a").write(f"{os.getpid()}\\n")
time.sleep(3600)
"""


def spawn(state: Path, *args, env: dict, log: Path) -> subprocess.Popen:
    command, *rest = args
    return subprocess.Popen([sys.executable, "-m", "guardian", command, "--state-dir", str(state), *rest],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


def data_objects(seaweed, prefix: str) -> int:
    return sum(1 for page in seaweed.client().get_paginator("list_objects_v2").paginate(
        Bucket=seaweed.bucket, Prefix=f"{prefix}/data/") for _ in page.get("Contents", ()))


def test_kill_9_mid_push_leaves_no_snapshot_and_the_next_push_resumes(plain_store, tmp_path, s3_url, seaweed,
                                                                     prefix, key_home):
    state = tmp_path / "state"
    first = snapshot(plain_store, state)
    # every object waits 3 s before it is sent: killed once the data is up, before the record
    proc = spawn(state, "replicate", "--store", str(plain_store), "--to", s3_url,
                 env={"GUARDIAN_TEST_REPLICA_DELAY": "3"}, log=tmp_path / "push.log")
    try:
        wait_for(lambda: data_objects(seaweed, prefix) >= 1, timeout=120, what="the data uploaded")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    sent_before = data_objects(seaweed, prefix)
    assert sent_before >= 1
    listed = json.loads(guardian(state, "snapshots", "--from", s3_url, "--json", check=True).stdout_text)
    assert listed == []                                   # nothing half-uploaded counts as a snapshot
    resumed = push(plain_store, state, s3_url)
    assert resumed["uploaded"] == [first]
    assert resumed["objects_present"] >= sent_before     # finished uploads are not redone
    assert resumed["objects_sent"] <= 2                   # only the object list and the record
    assert guardian(state, "verify", "--from", s3_url).returncode == 0
    local = json.loads(guardian(state, "snapshots", "--store", str(plain_store), "--json", check=True).stdout_text)
    assert [r["id"] for r in local] == [first]


def test_a_restore_killed_mid_fetch_resumes_without_refetching(plain_store, tmp_path, s3_url, key_home):
    state = tmp_path / "state"
    snapshot(plain_store, state)
    push(plain_store, state, s3_url)
    new_state, new_store = tmp_path / "new-state", tmp_path / "new-store"
    proc = spawn(new_state, "restore", "--from", s3_url, "--at", "latest", "--store", str(new_store),
                 env={"GUARDIAN_TEST_REPLICA_DELAY": "3"}, log=tmp_path / "restore.log")

    def fetched() -> int:
        return sum(1 for p in new_state.glob("stores/*/snapshots/*/*")
                   if p.parent.name != "manifests" and not p.name.startswith(".guardian-tmp"))
    try:
        wait_for(lambda: fetched() >= 1, timeout=120, what="the data fetched")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert not list(new_state.glob("stores/*/snapshots/manifests/*.manifest"))   # no half-visible snapshot
    done = fetched()
    out = guardian(new_state, "restore", "--from", s3_url, "--at", "latest", "--store", str(new_store), "--json",
                   check=True)
    answer = json.loads(out.stdout_text)
    assert answer["fetch"]["objects_reused"] >= done and answer["fetch"]["objects_fetched"] == 0
    assert answer["loadable"] is True
    assert tree(new_store) == tree(plain_store)


@pytest.mark.slow(45)   # a graceful SeaweedFS stop and a start: ~15 s each on a loaded box
def test_sidecar_keeps_snapshotting_through_an_outage_then_catches_up(plain_store, tmp_path, s3_url, seaweed, key_home):
    state = tmp_path / "state"
    pid_file, alerts_file = tmp_path / "child.pids", tmp_path / "alerts.jsonl"
    (tmp_path / "child.py").write_text(CHILD)
    env = {"GUARDIAN_REPLICAS": s3_url, "GUARDIAN_REPLICA_INTERVAL_SECONDS": "0.5",
           "GUARDIAN_BACKOFF_INITIAL": "0.2", "GUARDIAN_REPLICA_BACKOFF_MAX": "1",
           "GUARDIAN_ALERT_COMMAND": f"sh -c 'cat >> {alerts_file}; echo >> {alerts_file}'"}

    def status() -> dict:
        proc = run_cli("status", "--store", str(plain_store), "--state-dir", str(state), "--json", env=env)
        return json.loads(proc.stdout_text)

    def replica() -> dict:
        return status()["replicas"][0]

    sidecar = spawn(state, "run", "--store", str(plain_store), "--port", "0", "--", sys.executable,
                    str(tmp_path / "child.py"), str(pid_file), env=env, log=tmp_path / "sidecar.log")
    try:
        wait_for(lambda: replica().get("remote_snapshots", 0) >= 1, timeout=120, what="the first snapshot replicated")
        child = int(pid_file.read_text().split()[0])
        seaweed.stop()                                            # the replica goes down
        (plain_store / "during-outage.txt").write_text("written while the bucket was away\n")
        local = guardian(state, "snapshot", "--store", str(plain_store), "--json", env=env)
        assert local.returncode == 0                              # local snapshots never wait for it
        outage_id = json.loads(local.stdout_text)["id"]
        wait_for(lambda: replica().get("consecutive_errors", 0) >= 2, timeout=120, what="failures recorded")
        during = status()
        assert during["replicas"][0]["lag_seconds"] > 0
        assert any("failing" in w for w in during["warnings"])
        assert psutil.pid_exists(child) and during["sidecar"]["child"]["state"].lower() == "running"
        port = during["sidecar"]["http"]["port"]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert "guardian_replica_lag_seconds{" in metrics and "guardian_replica_errors_total{" in metrics
        seaweed.start()                                           # back again
        # caught up: the replica holds the outage's snapshot or a newer one (continuous capture may
        # commit another after it); snapshot ids sort by their UTC time
        wait_for(lambda: (replica().get("newest_remote") or "") >= outage_id, timeout=180, what="catch-up")
        after = status()
        assert after["replicas"][0]["consecutive_errors"] == 0 and after["replicas"][0]["lag_seconds"] == 0
        assert child_pids(pid_file) == [child] and psutil.pid_exists(child)   # the child never stopped
        assert guardian(state, "verify", "--from", s3_url, env=env).returncode == 0
        wait_for(lambda: alerts_file.exists() and "replica_recovered" in alerts_file.read_text(), timeout=30,
                 what="the recovered alert")
        assert "replica_failing" in alerts_file.read_text()
    except AssertionError as exc:
        log = (tmp_path / "sidecar.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"{exc}\nsidecar log tail:\n{log}") from None
    finally:
        if not seaweed.running:
            seaweed.start()
        sidecar.send_signal(signal.SIGTERM)
        assert sidecar.wait(timeout=60) == 0
    local_ids = json.loads(guardian(state, "snapshots", "--store", str(plain_store), "--json").stdout_text)
    assert outage_id in [r["id"] for r in local_ids]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def child_pids(pid_file: Path) -> list[int]:
    return [int(x) for x in pid_file.read_text().split()]


def test_the_sidecar_killed_9_mid_push_catches_up_when_started_again(plain_store, tmp_path, s3_url, seaweed,
                                                                     prefix, key_home):
    """`guardian run` with a replica, SIGKILLed once its first push has data on the bucket but no
    record yet (seen by listing the bucket: the push's own progress), then started again."""
    state, pid_file = tmp_path / "state", tmp_path / "child.pids"
    (tmp_path / "child.py").write_text(CHILD)
    env = {"GUARDIAN_REPLICAS": s3_url, "GUARDIAN_REPLICA_INTERVAL_SECONDS": "0.5",
           "GUARDIAN_BACKOFF_INITIAL": "0.2", "GUARDIAN_REPLICA_BACKOFF_MAX": "1"}
    argv = ("run", "--store", str(plain_store), "--port", "0", "--", sys.executable, str(tmp_path / "child.py"),
            str(pid_file))

    def local_ids() -> list[str]:
        proc = guardian(state, "snapshots", "--store", str(plain_store), "--json", env=env, check=True)
        return [r["id"] for r in json.loads(proc.stdout_text)]

    def replica() -> dict:
        proc = run_cli("status", "--store", str(plain_store), "--state-dir", str(state), "--json", env=env)
        return json.loads(proc.stdout_text)["replicas"][0]

    # every object waits 3 s before it is sent: data first, then the object list, the record last
    first = spawn(state, *argv, env={**env, "GUARDIAN_TEST_REPLICA_DELAY": "3"}, log=tmp_path / "first.log")
    try:
        wait_for(lambda: data_objects(seaweed, prefix) >= 1, timeout=180, what="the first push's data on the bucket")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    children = child_pids(pid_file) if pid_file.exists() else []
    try:
        sent_before = data_objects(seaweed, prefix)
        listed = json.loads(guardian(state, "snapshots", "--from", s3_url, "--json", env=env, check=True).stdout_text)
        assert listed == []                                   # killed mid-push: nothing half-sent counts
        before = local_ids()
        assert before, "the sidecar had committed a local snapshot before it pushed"
        second = spawn(state, *argv, env=env, log=tmp_path / "second.log")
        try:
            wait_for(lambda: (replica().get("newest_remote") or "") >= before[-1], timeout=240,
                     what="replication to catch up after the restart")
            assert data_objects(seaweed, prefix) >= sent_before
            assert guardian(state, "verify", "--from", s3_url, env=env).returncode == 0
            after = local_ids()
            assert set(before) <= set(after), "a local snapshot was lost"    # none lost
            assert second.poll() is None                      # the second sidecar runs (no stale lock)
            # the orphan the kill left (its recorded child) is stopped; the new sidecar runs its own
            wait_for(lambda: len(child_pids(pid_file)) >= 2, timeout=120, what="the new sidecar's child")
            wait_for(lambda: not any(alive(pid) for pid in children), timeout=120, what="the orphaned child to stop")
            assert alive(child_pids(pid_file)[-1])
        except AssertionError as exc:
            log = (tmp_path / "second.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"{exc}\nsecond sidecar log tail:\n{log}") from None
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=60) == 0
    finally:
        for pid in set(children + (child_pids(pid_file) if pid_file.exists() else [])):
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)   # the first sidecar's child, orphaned by the kill -9
