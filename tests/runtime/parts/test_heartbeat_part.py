"""The heartbeat part: the status file says running at start and on every child state change,
and not running once stopped."""

from __future__ import annotations

from guardian.runtime.context import CHILD_STATE
from guardian.runtime.parts.heartbeat import HeartbeatPart
from guardian.runtime.status import StatusFile


def test_the_status_file_follows_start_child_changes_and_stop(parts):
    ctx = parts.make(cmd=["contextd"])
    calls = []

    def describe(running: bool) -> dict:
        calls.append(running)
        return {"sidecar": {"running": running, "writes": len(calls)}}

    part = HeartbeatPart(ctx, describe)
    status = StatusFile(ctx.paths.status_file)
    part.start()
    try:
        assert status.read()["sidecar"] == {"running": True, "writes": 1}
        ctx.emit(CHILD_STATE, old="starting", new="running", snapshot={})
        assert status.read()["sidecar"] == {"running": True, "writes": 2}
        assert part.thread.name == "guardian-heartbeat" and part.thread.is_alive()
    finally:
        part.stop()
    assert not part.thread.is_alive()
    assert status.read()["sidecar"]["running"] is False and calls[-1] is False


def test_an_unwritable_status_file_is_logged_not_fatal(parts):
    ctx = parts.make()
    ctx.paths.status_file.mkdir(parents=True)            # a folder where the file belongs: every write fails
    part = HeartbeatPart(ctx, lambda running: {"running": running})
    part.start()
    part.stop()
    assert ctx.paths.status_file.is_dir() and not part.thread.is_alive()
