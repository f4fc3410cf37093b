"""The supervisor part: the foreground of `guardian run -- CMD` with a real child process."""

from __future__ import annotations

import json
import signal
import sys
import threading

from guardian.runtime.context import CHILD_STATE, REPAIR
from guardian.runtime.parts.supervisor import SupervisorPart
from tests.waiting import wait_for

CHILD = [sys.executable, "-c", "import time; time.sleep(3600)"]


def test_runs_the_child_records_it_reports_it_and_stops_it_on_sigterm(parts):
    ctx = parts.make(cmd=CHILD)
    parts.listen(ctx, CHILD_STATE)
    part = SupervisorPart(ctx)
    part.start()
    assert ctx.child is part.supervisor
    codes = []
    runner = threading.Thread(target=lambda: codes.append(part.run()))
    runner.start()
    try:
        wait_for(lambda: part.status().get("child", {}).get("state") == "running", what="the child to run")
        pid = part.status()["child"]["pid"]
        assert json.loads(ctx.paths.child_record_file.read_text())["pid"] == pid
        health = part.health()
        assert (health["healthy"], health["status"], health["child"]["pid"]) == (True, "ok", pid)
        assert "running" in [e["new"] for e in parts.events(CHILD_STATE)]
    finally:
        part.notify_signal(signal.SIGTERM)               # what the one signal path hands the foreground
        runner.join(60)
    assert codes == [0] and part.status()["child"]["state"] == "stopped"


def test_the_first_start_trusts_the_start_up_check_every_restart_checks_again(parts):
    ctx = parts.make(cmd=CHILD)
    asked = []
    ctx.provide(REPAIR, lambda: asked.append("repair"))
    part = SupervisorPart(ctx)
    first = part.preflight()
    assert first.ok and first.detail == "checked at start-up" and asked == []
    again = part.preflight()
    assert again.ok and not again.repaired and asked == ["repair"]
