"""No store yet (a new machine: contextd creates it on first start) is handled the same way by
every command: one line, exit 1 (WARNINGS); `run` and `exec` start the child anyway, and `run`
starts guarding the store once it appears."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request

import pytest

from guardian.errors import ExitCode
from tests.conftest import STORE_PLAIN, run_cli
from tests.waiting import wait_for

READERS = (("check",), ("status",), ("snapshot",), ("export",),
           ("query", "--collection", "checkpoints", "--like", "x"), ("restore", "--at", "latest"))

# many real CLI processes per test: a deadline for a hang, not a speed goal (CI is a loaded 2-core box)
pytestmark = pytest.mark.timeout(900)


@pytest.mark.parametrize("argv", READERS, ids=lambda a: a[0])
def test_every_command_says_no_store_yet_the_same_way(cli, tmp_path, argv):
    missing = tmp_path / "not-yet" / "vectorstore"
    proc = cli(*argv, "--store", str(missing))
    assert proc.returncode == ExitCode.WARNINGS, proc.stderr_text
    assert "internal error" not in proc.stderr_text and "Traceback" not in proc.stderr_text
    if argv[0] in ("snapshot", "export", "query", "restore"):
        assert proc.stderr_text.startswith(f"warning: no store yet at {missing}")
        assert len(proc.stderr_text.strip().splitlines()) == 1 and proc.stdout_text == ""
    if argv[0] == "check":    # check's own two lines, not a table of one store_missing problem
        assert proc.stdout_text.startswith(f"store: no store yet at {missing}"), proc.stdout_text
        assert "store_missing" not in proc.stdout_text and len(proc.stdout_text.strip().splitlines()) == 2
    if argv[0] == "status":   # the same rule, said in status's own lines, not as "loadable, 1 problem"
        assert f"store: no store yet at {missing}" in proc.stdout_text, proc.stdout_text
        assert "loadable" not in proc.stdout_text and "problem" not in proc.stdout_text
        assert "status: warning: no store yet" in proc.stdout_text
    assert not missing.exists()  # nothing created where contextd will create its store


def test_exec_starts_the_child_without_a_store(cli, tmp_path):
    marker = tmp_path / "ran"
    proc = cli("exec", "--store", str(tmp_path / "none"), "--", sys.executable, "-c",
               f"open({str(marker)!r}, 'w').write('yes')")
    assert proc.returncode == 0, proc.stderr_text
    assert marker.read_text() == "yes" and proc.stdout_text == ""  # stdout belongs to the child


def test_restore_recreates_a_lost_store_from_its_snapshots(cli, plain_store, tmp_path):
    cli("snapshot", "--store", str(plain_store), check=True)
    before = {str(p.relative_to(plain_store)): p.read_bytes() for p in plain_store.rglob("*") if p.is_file()}
    shutil.move(plain_store, tmp_path / "elsewhere")
    proc = cli("restore", "--at", "latest", "--force", "--store", str(plain_store))
    assert proc.returncode == 0, proc.stderr_text
    assert "was missing; created it" in proc.stderr_text
    after = {str(p.relative_to(plain_store)): p.read_bytes() for p in plain_store.rglob("*") if p.is_file()}
    assert after == before


def test_run_starts_the_child_then_guards_the_store_when_it_appears(state_dir, tmp_path):
    store = tmp_path / "home" / ".config" / "contextd" / "vectorstore"
    marker = tmp_path / "child-started"
    env = {**os.environ, "GUARDIAN_STATE_DIR": str(state_dir), "GUARDIAN_DEBOUNCE_SECONDS": "0.1"}
    child = f"import time; open({str(marker)!r}, 'w').write('up'); time.sleep(3600)"
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "guardian", "run", "--store", str(store), "--port", "0",
                             "--log-level", "info", "--", sys.executable, "-c", child],
                            env=env, stdout=subprocess.DEVNULL, stderr=log)

    def status():
        done = run_cli("status", "--store", str(store), "--json", env=env)
        return json.loads(done.stdout_text) if done.stdout_text.strip() else {}

    try:
        wait_for(marker.exists, timeout=180, what="the child to start with no store")
        running = wait_for(lambda: (s := status()).get("sidecar", {}).get("running") and s, timeout=180,
                           what="the sidecar's status")
        assert running["sidecar"]["child"]["state"] == "running" and running["snapshots"]["count"] == 0
        # guarding nothing yet is said: status shows it, the log has it at warning level
        assert running["store"]["exists"] is False and "no store yet" in " ".join(running["warnings"])
        waiting = [json.loads(line) for line in (tmp_path / "run.log").read_text().splitlines()
                   if "store_missing_waiting" in line]
        assert waiting and waiting[0]["level"] == "warning" and waiting[0]["store"] == str(store)
        shutil.copytree(STORE_PLAIN, store)           # contextd's first start creates the store
        guarded = wait_for(lambda: (s := status())["snapshots"]["count"] >= 1 and s, timeout=180,
                           what="a snapshot of the new store")
        assert guarded["store"]["loadable"] is True
        port = guarded["sidecar"]["http"]["port"]

        def collections():
            body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/collections", timeout=10).read())
            names = {c["name"] for c in body.get("collections", body if isinstance(body, list) else [])}
            return "checkpoints" in names and names

        wait_for(collections, timeout=180, what="the index of the new store")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    text = (tmp_path / "run.log").read_text()
    assert code == 0, text[-2000:]
    assert "internal error" not in text and "store_missing_waiting" in text and "store_appeared" in text
    assert "snapshot_failed" not in text                # no store yet is not a failure


def test_a_dry_run_restore_of_a_lost_store_creates_nothing(cli, plain_store, tmp_path):
    cli("snapshot", "--store", str(plain_store), check=True)
    files = len([p for p in plain_store.rglob("*") if p.is_file()])
    shutil.move(plain_store, tmp_path / "elsewhere")
    proc = cli("restore", "--at", "latest", "--dry-run", "--store", str(plain_store))
    assert proc.returncode == 0, proc.stderr_text
    assert f"{files} written" in proc.stdout_text and "is missing; a restore would create it" in proc.stderr_text
    assert not plain_store.exists()            # a dry run writes nothing, not even the store folder
