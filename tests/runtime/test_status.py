"""The status model: the status file, build_status in each state, exit codes (rendering: commands/test_status_cmd)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from guardian.config import Config
from guardian.errors import ExitCode
from guardian.local.paths import StatePaths
from guardian.runtime.status import (
    HEARTBEAT_SECONDS, StatusFile, build_status,
    default_pid_alive, human_duration, iso_utc, snapshot_time, to_epoch,
)
from guardian.store.scan import scan_store
from tests.conftest import DAMAGED, copy_store

NOW = datetime(2025, 1, 10, 12, 0, 0, tzinfo=timezone.utc)
CONFIG = Config(snapshot_interval_minutes=60.0)


def fresh_snapshots(count: int = 24, newest_age: timedelta = timedelta(minutes=12)) -> list[datetime]:
    return [NOW - newest_age - timedelta(hours=i) for i in range(count)]


def sidecar_file(pid: int = 4242, updated_ago: float = 2.0, child_state: str = "running",
                 fatal: bool = False, **extra) -> dict:
    now = NOW.timestamp()
    return {
        "sidecar": {
            "running": True, "pid": pid,
            "started_at": iso_utc(now - 7200), "updated_at": iso_utc(now - updated_ago),
            "http": {"host": "127.0.0.1", "port": 8765},
            "child": {"state": child_state, "pid": 4243, "restarts": 5 if fatal else 0,
                      "last_exit": 1 if fatal else None, "fatal": fatal, "cmd": ["/usr/bin/contextd", "serve"]},
        },
        **extra,
    }


def alive(pid: int) -> bool:
    return pid == 4242


@pytest.fixture
def paths(plain_store, state_dir) -> StatePaths:
    return StatePaths.for_store(plain_store, state_dir)


def status_for(paths, scan, snapshots, data, quarantine=0):
    return build_status(paths, CONFIG, NOW, scan, snapshots, quarantine, data, pid_alive=alive)


# --------------------------------------------------------------------------- the status file


def test_status_file_round_trips_atomically(paths):
    status_file = StatusFile(paths)
    assert status_file.path == paths.status_file
    assert status_file.read() is None
    status_file.write(sidecar_file())
    assert status_file.read() == json.loads(json.dumps(sidecar_file()))
    assert oct(paths.status_file.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in paths.status_file.parent.iterdir() if p.name.startswith(".guardian-tmp-")] == []


def test_garbled_or_foreign_status_file_reads_as_none(tmp_path):
    path = tmp_path / "status.json"
    path.write_text("{not json")
    assert StatusFile(path).read() is None
    path.write_text("[1, 2]")
    assert StatusFile(path).read() is None


# --------------------------------------------------------------------------- each state


def test_stopped_sidecar_with_a_healthy_store_is_a_warning(paths, plain_store):
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(), None)
    assert status["sidecar"] == {"running": False, "state": "stopped", "detail": "not running"}
    assert status["store"]["loadable"] is True
    assert status["store"]["collections"] == {"total": 5, "healthy": 5, "warning": 0, "damaged": 0}
    assert status["exit_code"] == ExitCode.WARNINGS
    assert status["warnings"] == ["sidecar not running"]


def test_running_and_healthy_is_exit_zero(paths, plain_store):
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(), sidecar_file())
    sidecar = status["sidecar"]
    assert sidecar["running"] is True and sidecar["pid"] == 4242
    assert sidecar["uptime_seconds"] == pytest.approx(7200)
    assert sidecar["child"]["state"] == "running" and sidecar["child"]["fatal"] is False
    snaps = status["snapshots"]
    assert snaps["count"] == 24 and snaps["stale"] is False
    assert snaps["newest_age_seconds"] == pytest.approx(12 * 60)
    assert snaps["newest"] == "2025-01-10T11:48:00Z" and snaps["oldest"] == "2025-01-09T12:48:00Z"
    assert status["warnings"] == [] and status["exit_code"] == ExitCode.OK and status["health"] == "ok"


def test_child_fatal_is_exit_four(paths, plain_store):
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(),
                        sidecar_file(child_state="fatal", fatal=True))
    assert status["sidecar"]["child"]["fatal"] is True
    assert status["exit_code"] == ExitCode.CHILD_FATAL
    assert any("FATAL" in w for w in status["warnings"])


def test_supervisor_shaped_child_state_fatal_counts_too(paths, plain_store):
    data = sidecar_file()
    data["sidecar"]["child"] = {"state": "fatal", "pid": None, "restarts": 5, "last_exit_code": 1,
                                "command": ["contextd"], "fatal_reason": "5 failures in 300s"}
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(), data)
    assert status["sidecar"]["child"]["last_exit"] == 1
    assert status["exit_code"] == ExitCode.CHILD_FATAL


def test_damaged_store_is_exit_three_even_with_a_fatal_child(paths, tmp_path):
    store = copy_store(DAMAGED / "plain" / "missing_metadata", tmp_path / "damaged")
    status = status_for(paths, scan_store(store), fresh_snapshots(), sidecar_file(fatal=True))
    assert status["store"]["loadable"] is False
    assert "collection metadata file not found" in status["store"]["error"]
    assert status["store"]["collections"]["damaged"] == 1
    assert status["exit_code"] == ExitCode.UNLOADABLE and status["health"] == "unloadable"


def test_stale_snapshots_are_a_warning(paths, plain_store):
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(newest_age=timedelta(hours=2, minutes=1)),
                        sidecar_file())
    assert status["snapshots"]["stale"] is True
    assert status["exit_code"] == ExitCode.WARNINGS
    assert status["warnings"] == ["newest snapshot is 2h old (more than 2x the interval)"]


def test_no_snapshot_at_all_is_a_warning(paths, plain_store):
    status = status_for(paths, scan_store(plain_store), [], sidecar_file())
    assert status["snapshots"]["count"] == 0 and status["snapshots"]["stale"] is True
    assert status["warnings"] == ["no snapshot yet"] and status["exit_code"] == ExitCode.WARNINGS


def test_stale_status_file_means_not_running(paths, plain_store):
    data = sidecar_file(updated_ago=3 * HEARTBEAT_SECONDS + 1, fatal=True)
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(), data)
    assert status["sidecar"]["running"] is False
    assert status["sidecar"]["detail"] == "not running (stale status file)"
    assert status["exit_code"] == ExitCode.WARNINGS  # a FATAL child of a dead sidecar is history, not now


def test_dead_pid_means_not_running(paths, plain_store):
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(), sidecar_file(pid=999))
    assert status["sidecar"]["state"] == "stopped"
    assert "999" in status["sidecar"]["detail"]


def test_store_loading_with_warnings_is_a_warning(paths, tmp_path):
    store = copy_store(DAMAGED / "plain" / "wrong_format_file", tmp_path / "mixed")
    status = status_for(paths, scan_store(store), fresh_snapshots(), sidecar_file())
    assert status["store"]["loadable"] is True and status["store"]["collections"]["warning"] == 1
    assert status["exit_code"] == ExitCode.WARNINGS
    assert status["warnings"][0].startswith("store loads with")


def test_informational_notes_do_not_make_a_warning(paths, tmp_path):
    store = copy_store(DAMAGED / "plain" / "stray_files", tmp_path / "stray")
    status = status_for(paths, scan_store(store), fresh_snapshots(), sidecar_file())
    assert status["store"]["problems"] >= 1
    assert status["exit_code"] == ExitCode.OK


def test_last_repair_and_quarantine_are_reported(paths, plain_store):
    repair = {"time": "2025-01-10T11:00:00Z", "summary": "re-created metadata of webapp_memories"}
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(), sidecar_file(last_repair=repair),
                        quarantine=3)
    assert status["last_repair"] == repair and status["store"]["quarantined"] == 3


def test_status_dict_is_json_serialisable(paths, plain_store):
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(), sidecar_file())
    assert json.loads(json.dumps(status))["exit_code"] == ExitCode.OK


# --------------------------------------------------------------------------- helpers


def test_time_helpers():
    assert to_epoch("2025-01-10T12:00:00Z") == NOW.timestamp()
    assert to_epoch(NOW.replace(tzinfo=None)) == NOW.timestamp()
    assert to_epoch("yesterday") is None and to_epoch(None) is None
    assert snapshot_time(NOW) == NOW.timestamp()
    assert snapshot_time({"created_at": "2025-01-10T12:00:00Z"}) == NOW.timestamp()
    assert [human_duration(s) for s in (45, 12 * 60, 2 * 3600, 3 * 86400)] == ["45s", "12 min", "2h", "3d"]


def test_snapshot_time_reads_a_real_manifest_header():
    from guardian.snapshots.manifest import Manifest

    manifest = Manifest(id="x", time=NOW, store="/s", compress=False)
    assert snapshot_time(manifest) == NOW.timestamp()


def test_pid_alive_probe_on_real_processes():
    assert default_pid_alive(os.getpid()) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert default_pid_alive(child.pid) is False


def test_uncaptured_changes_and_unrepaired_damage_are_shown(paths, plain_store):
    from guardian.commands.status_cmd import render_status

    data = sidecar_file()
    data["sidecar"]["capture"] = {"pending_changes": 3, "oldest_pending_seconds": 1.5, "captures": 10}
    data["sidecar"]["health"] = {"damaged": [{"path": "40917930/x.gob", "kind": "document_damaged",
                                              "reason": "empty"}]}
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(), data)
    assert status["snapshots"]["uncaptured_changes"] == 3
    assert status["snapshots"]["uncaptured_oldest_seconds"] == pytest.approx(3.5)  # the file is 2 s old
    assert status["store"]["unrepaired"][0]["path"] == "40917930/x.gob"
    assert status["exit_code"] == ExitCode.WARNINGS
    text = render_status(status)
    assert "3 changes not yet captured" in text and "unrepaired damage: 40917930/x.gob" in text
    data["sidecar"]["capture"]["pending_changes"] = 0
    data["sidecar"]["health"]["damaged"] = []
    status = status_for(paths, scan_store(plain_store), fresh_snapshots(), data)
    assert "every change captured" in render_status(status) and status["exit_code"] == ExitCode.OK
