"""End-to-end: `guardian run` (the sidecar assembly) as a real subprocess on real stores."""

from __future__ import annotations

import json
from datetime import datetime, timezone
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from guardian.errors import ExitCode
from guardian.local.paths import StatePaths
from guardian.runtime.status import StatusFile
from guardian.store.scan import scan_store
from tests.conftest import run_cli
from tests.waiting import wait_for

CHILD = """
import os, sys, time
open(sys.argv[1], "a").write(f"{os.getpid()}\\n")
time.sleep(3600)
"""


def status_json(store, env) -> dict:
    proc = run_cli("status", "--store", str(store), "--json", env=env)
    data = json.loads(proc.stdout_text)
    data["_exit"] = proc.returncode
    return data


def start_sidecar(store, env, tmp_path, *cmd) -> subprocess.Popen:
    full_env = {**os.environ, **env}
    stderr = open(tmp_path / "sidecar.log", "wb")
    args = [sys.executable, "-m", "guardian", "run", "--store", str(store), "--port", "0"]
    if cmd:
        args += ["--", *cmd]
    return subprocess.Popen(args, env=full_env, stdout=subprocess.DEVNULL, stderr=stderr)


def child_pids(pid_file: Path) -> list[int]:
    if not pid_file.exists():
        return []
    return [int(x) for x in pid_file.read_text().split()]


@pytest.fixture
def env(state_dir):
    return {"GUARDIAN_STATE_DIR": str(state_dir), "GUARDIAN_BACKOFF_INITIAL": "0.05",
            "GUARDIAN_BACKOFF_MAX": "0.2", "GUARDIAN_DEBOUNCE_SECONDS": "0.1"}


def test_run_supervises_repairs_and_stops_cleanly(plain_store, env, tmp_path):
    pid_file = tmp_path / "child.pids"
    (tmp_path / "child.py").write_text(CHILD)
    proc = start_sidecar(plain_store, env, tmp_path, sys.executable, str(tmp_path / "child.py"), str(pid_file))
    try:
        first = wait_for(lambda: child_pids(pid_file))[0]
        status = wait_for(lambda: (s := status_json(plain_store, env))["sidecar"]["running"]
                          and s["snapshots"]["count"] >= 1 and s)
        assert status["sidecar"]["child"]["state"] == "running"
        assert status["store"]["loadable"] is True
        assert status["source"] == "sidecar"  # asked over the control socket: no walk of the store
        port = status["sidecar"]["http"]["port"]
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())
        assert health["healthy"] is True

        # the child dies on a damaged store: guardian repairs (from the start-up snapshot) and restarts it
        victim = plain_store / "40917930" / "5628d2e7.gob"
        original = victim.read_bytes()
        victim.write_bytes(b"")
        os.kill(first, signal.SIGKILL)
        pids = wait_for(lambda: len(child_pids(pid_file)) >= 2 and child_pids(pid_file))
        assert pids[-1] != first
        assert victim.read_bytes() == original
        assert scan_store(plain_store).loadable
        status = wait_for(lambda: (s := status_json(plain_store, env))["sidecar"]["child"]["restarts"] >= 1 and s)
        assert status["sidecar"]["child"]["state"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    for pid in child_pids(pid_file):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    after = status_json(plain_store, env)
    assert after["sidecar"]["running"] is False
    assert after["source"] == "disk"


def test_watcher_recreates_lost_metadata_while_running(plain_store, env, tmp_path):
    proc = start_sidecar(plain_store, env, tmp_path)
    try:
        wait_for(lambda: status_json(plain_store, env)["sidecar"]["running"])
        meta = plain_store / "6c7f5464" / "00000000.gob"
        original = meta.read_bytes()
        meta.unlink()
        wait_for(lambda: meta.exists() and meta.read_bytes() == original, what="metadata re-created")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_crash_loop_reaches_fatal_and_status_says_so(plain_store, env, tmp_path):
    env = {**env, "GUARDIAN_MAX_FAILURES": "2"}
    proc = start_sidecar(plain_store, env, tmp_path, sys.executable, "-c", "raise SystemExit(3)")
    try:
        status = wait_for(lambda: (s := status_json(plain_store, env))["sidecar"].get("child")
                          and s["sidecar"]["child"]["fatal"] and s, timeout=60)
        assert status["_exit"] == 4
        assert status["health"] == "child-fatal"
        port = status["sidecar"]["http"]["port"]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert err.value.code == 503
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_status_when_stopped_damaged_and_stale(plain_store, env):
    stopped = status_json(plain_store, env)
    assert stopped["sidecar"]["running"] is False
    assert stopped["_exit"] == 1  # not running, no snapshot yet
    run_cli("snapshot", "--store", str(plain_store), env=env, check=True)
    stale_env = {**env, "GUARDIAN_SNAPSHOT_INTERVAL_MINUTES": "0.001"}
    time.sleep(0.2)
    stale = status_json(plain_store, stale_env)
    assert stale["snapshots"]["stale"] is True
    assert any("snapshot" in w for w in stale["warnings"])
    (plain_store / "40917930" / "00000000.gob").unlink()
    damaged = status_json(plain_store, env)
    assert damaged["store"]["loadable"] is False
    assert damaged["_exit"] == 3


def test_restore_while_supervising_stops_restores_and_restarts_the_child(plain_store, env, tmp_path):
    pid_file = tmp_path / "child.pids"
    (tmp_path / "child.py").write_text(CHILD)
    proc = start_sidecar(plain_store, env, tmp_path, sys.executable, str(tmp_path / "child.py"), str(pid_file))
    try:
        wait_for(lambda: child_pids(pid_file))
        wait_for(lambda: status_json(plain_store, env)["snapshots"]["count"] >= 1)
        doc = plain_store / "6c7f5464" / "0356cf79.gob"
        original = doc.read_bytes()
        before = datetime.now(timezone.utc).isoformat()  # continuous capture snapshots the deletion itself
        doc.unlink()
        restored = run_cli("restore", "--store", str(plain_store), "--at", before, "--json", env=env)
        assert restored.returncode == 0, restored.stderr_text
        answer = json.loads(restored.stdout_text)
        assert answer["through_sidecar"] is True and answer["child_paused"] is True
        assert doc.read_bytes() == original
        pids = wait_for(lambda: len(child_pids(pid_file)) >= 2 and child_pids(pid_file))
        assert len(set(pids)) == len(pids)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_new_collection_is_snapshotted_quickly_and_deleted_ones_stay_deleted(plain_store, env, tmp_path):
    import shutil

    import numpy as np

    from guardian.format import chromem

    proc = start_sidecar(plain_store, env, tmp_path)
    try:
        wait_for(lambda: status_json(plain_store, env)["snapshots"]["count"] >= 1)
        name = "newproj_memories"
        folder = plain_store / chromem.collection_dir_name(name)
        folder.mkdir()
        doc = chromem.Document("n1", {"project_id": "newproj"}, np.ones(384, dtype=np.float32) / np.sqrt(384), "hi")
        (folder / f"{chromem.document_stem('n1')}.gob").write_bytes(chromem.encode_document(doc))
        (folder / "00000000.gob").write_bytes(chromem.encode_collection(name, {}))

        def snapshotted():
            listing = run_cli("snapshots", "--store", str(plain_store), "--json", env=env)
            return name in listing.stdout_text
        wait_for(snapshotted, interval=0.2, what="a snapshot holding the new collection")

        removed = plain_store / "6c7f5464"  # contextd deletes the checkpoints collection
        shutil.rmtree(removed)

        def removal_seen():  # the watcher handled it (the status file lists it): nothing may bring it back
            data = StatusFile(StatePaths.for_store(plain_store, env["GUARDIAN_STATE_DIR"]).status_file).read() or {}
            removed_dirs = data.get("sidecar", {}).get("watcher", {}).get("collections_removed", [])
            return any(item["dir"] == removed.name for item in removed_dirs)
        wait_for(removal_seen, timeout=60, what="the watcher's collection_removed")
        assert not removed.exists()
        status = status_json(plain_store, env)
        assert status["store"]["loadable"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_metrics_report_the_start_up_pre_flight(plain_store, env, tmp_path):
    proc = start_sidecar(plain_store, env, tmp_path)
    try:
        status = wait_for(lambda: (s := status_json(plain_store, env))["sidecar"]["running"] and s)
        port = status["sidecar"]["http"]["port"]
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        assert float(values["guardian_store_loadable"]) == 1.0
        assert float(values["guardian_documents"]) == sum(c.documents for c in scan_store(plain_store).collections)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_a_second_sidecar_on_the_same_store_exits_locked_with_one_line(plain_store, env, tmp_path):
    proc = start_sidecar(plain_store, env, tmp_path)
    try:
        wait_for(lambda: status_json(plain_store, env)["sidecar"]["running"])
        second = run_cli("run", "--store", str(plain_store), "--port", "0", env=env)
        assert second.returncode == ExitCode.LOCKED
        assert second.stderr_text.strip().splitlines()[-1].startswith("error: another guardian sidecar already guards")
        assert status_json(plain_store, env)["sidecar"]["pid"] == proc.pid  # the first one's status file stands
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
