"""Restoring under a running contextd (real processes, real CLI): another process using the store
refuses the restore without --force and is named; under `guardian run` the child (a real chromem
writer) is stopped, the store restored, the child started again, and `restore --undo` brings back
in one step every memory it wrote after the snapshot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.format.layout import collection_dir_name, document_stem
from tests.conftest import chromem_load, run_cli
from tests.waiting import wait_for

CHECKPOINT = "19d2b8c6-06bc-4021-8d45-936ca7fddd07"   # a memory of the fixture store's checkpoints
HOLD = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)   # a writer between chromem's truncate and its write
print("ready", flush=True)
sys.stdin.readline()
"""


def test_another_process_using_the_store_refuses_the_restore_until_forced_and_is_named(cli, plain_store, tmp_path):
    cli("snapshot", "--store", str(plain_store), check=True)
    extra = plain_store / "40917930" / "extra.gob"
    extra.write_bytes(b"x")
    doc = next((plain_store / "40917930").glob("0*.gob"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(doc)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        refused = cli("restore", "--at", "latest", "--store", str(plain_store))
        lines = refused.stderr_text.strip().splitlines()
        assert refused.returncode != 0 and len(lines) == 1, refused.stderr_text
        assert f"pid {holder.pid} (" in lines[0] and "holds 1 store file(s) open for writing" in lines[0]
        assert "--force" in lines[0] and extra.exists()                  # nothing was changed
        dry = cli("restore", "--at", "latest", "--dry-run", "--store", str(plain_store), check=True).stdout_text
        assert "1 process(es) use this store" in dry and f"pid {holder.pid}:" in dry
        forced = cli("restore", "--at", "latest", "--force", "--json", "--store", str(plain_store))
        assert forced.returncode == 0, forced.stderr_text
        [user] = json.loads(forced.stdout_text)["users"]                 # to be restarted by the user
        assert user["pid"] == holder.pid and not extra.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def writer_lines(log: Path) -> list[dict]:
    lines = []
    for line in log.read_text().splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "file" in data:
            lines.append(data)
    return lines


@pytest.mark.slow(60)
def test_under_guardian_run_the_writer_is_stopped_restored_around_and_undo_brings_its_writes_back(
        plain_store, tmp_path, state_dir, chromemh):
    env = {"GUARDIAN_STATE_DIR": str(state_dir), "GUARDIAN_BACKOFF_INITIAL": "0.05", "GUARDIAN_BACKOFF_MAX": "0.2",
           "GUARDIAN_DEBOUNCE_SECONDS": "0.1"}
    out = tmp_path / "writer.out"
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "guardian", "run", "--store", str(plain_store), "--port", "0", "--",
         str(chromemh), "writer", str(plain_store), "0", "live", "100000", "100"],
        env={**os.environ, **env}, stdout=open(out, "wb"), stderr=open(tmp_path / "sidecar.log", "wb"))
    folder = plain_store / collection_dir_name("live")

    def snapshots() -> list[dict]:
        return json.loads(run_cli("snapshots", "--all", "--json", "--store", str(plain_store), env=env).stdout_text)

    try:
        first = wait_for(lambda: next((s["id"] for s in snapshots() if "live" in s.get("collections", [])), None),
                         timeout=180, what="a snapshot holding the writer's collection")
        seen = len(writer_lines(out))
        wait_for(lambda: len(writer_lines(out)) >= seen + 5, timeout=180, what="five more writes after it")
        restored = run_cli("restore", "--at", first, "--force", "--json", "--store", str(plain_store), env=env,
                           timeout=300)
        assert restored.returncode == 0, restored.stderr_text                # not 3: no writer raced the restore
        answer = json.loads(restored.stdout_text)
        assert answer["through_sidecar"] and answer["child_paused"] and answer["users"] == []
        assert answer["loadable"] is True and answer["counts"]["move_aside"] >= 5
        before_restore = [w for w in writer_lines(out)]
        moved = [w for w in before_restore if not (folder / f"{w['file']}.gob").exists()]
        assert len(moved) >= 5                                               # its newest writes went aside ...
        undone = run_cli("restore", "--undo", "--json", "--store", str(plain_store), env=env, timeout=300)
        assert undone.returncode == 0, undone.stderr_text
        result = json.loads(undone.stdout_text)
        assert result["undone"] == answer["restore_id"] and result["child_restarted"] is True
        assert all((folder / f"{w['file']}.gob").exists() for w in moved)   # ... and came back in one step
        assert len(result["put_back"]) == len(answer["quarantine_entries"])
        lost = plain_store / "6c7f5464" / f"{document_stem(CHECKPOINT)}.gob"   # one memory, through the sidecar
        kept = lost.read_bytes()
        lost.unlink()
        one = run_cli("restore", "--at", first, "--id", CHECKPOINT, "--json", "--store", str(plain_store), env=env,
                      timeout=300)
        assert one.returncode == 0, one.stderr_text
        single = json.loads(one.stdout_text)
        assert single["through_sidecar"] and single["counts"]["write"] == 1 and lost.read_bytes() == kept
    finally:
        sidecar.send_signal(signal.SIGTERM)
        code = sidecar.wait(timeout=60)
    assert code == 0, (tmp_path / "sidecar.log").read_text()[-3000:]
    loaded = chromem_load(chromemh, plain_store)
    assert loaded["ok"], loaded
    assert loaded["collections"]["live"]["count"] >= len({w["id"] for w in writer_lines(out)})   # every write kept
