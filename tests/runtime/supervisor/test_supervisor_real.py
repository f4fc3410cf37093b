"""The supervisor with real child processes: crashes, hangs, stubborn children, grandchildren, signals."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from guardian.runtime.supervisor import (
    FATAL,
    RUNNING,
    STOPPED,
    StartCheck,
    RestartPolicy,
    Supervisor,
)
from guardian.runtime.supervisor.process import spawn_process
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]
FAST = RestartPolicy(backoff_initial=0.01, backoff_max=0.05, jitter_fraction=0.1, stable_seconds=60.0,
                     max_failures=3, failure_window=60.0)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]




def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Running:
    """Runs a Supervisor's loop in a thread; stops it and checks it ended on exit."""

    def __init__(self, cmd, **kwargs):
        kwargs.setdefault("policy", FAST)
        kwargs.setdefault("stop_timeout", 2.0)
        self.sup = Supervisor(cmd, poll_interval=0.01, heartbeat=lambda: None, sd_notify=lambda m: False, **kwargs)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.exit_code = None

    def run(self):
        self.exit_code = self.sup.run_forever()

    def __enter__(self):
        self.thread.start()
        return self.sup

    def __exit__(self, *exc):
        self.sup.stop()
        self.thread.join(15)
        assert not self.thread.is_alive(), "supervisor loop did not stop"


def test_a_child_that_crashes_at_once_reaches_fatal_quickly():
    started = time.monotonic()
    with Running(py("import sys; sys.exit(3)")) as sup:
        assert wait_until(lambda: sup.state == FATAL)
        snap = sup.snapshot()
    assert time.monotonic() - started < 5
    assert snap["last_exit_code"] == 3 and snap["failures_in_window"] == 3 and snap["restarts"] == 2
    assert snap["pid"] is None


def test_a_child_that_crashes_later_is_restarted():
    with Running(py("import time, sys; time.sleep(0.3); sys.exit(4)")) as sup:
        assert wait_until(lambda: sup.snapshot()["restarts"] >= 1 and sup.state == RUNNING)
        snap = sup.snapshot()
        assert snap["last_exit_code"] == 4 and psutil.pid_exists(snap["pid"])
        first_pid = snap["pid"]
    assert gone(first_pid)


def test_a_hanging_child_that_ignores_sigterm_is_killed_after_the_stop_timeout(tmp_path):
    ready = tmp_path / "ready"
    code = f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(ready)!r}, "w").close()
        time.sleep(120)
    """
    runner = Running(py(code), stop_timeout=0.5)
    with runner as sup:
        assert wait_until(ready.exists)
        pid = sup.snapshot()["pid"]
        started = time.monotonic()
        sup.stop()
        assert wait_until(lambda: sup.state == STOPPED)
        took = time.monotonic() - started
    assert 0.5 <= took < 4
    assert sup.snapshot()["last_exit_signal"] == "SIGKILL"
    assert gone(pid) and runner.exit_code == 0


def test_no_grandchild_survives_a_stop(tmp_path):
    pids = tmp_path / "pids"
    code = f"""
        import subprocess, sys, time
        stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
        kids = [subprocess.Popen([sys.executable, "-c", stubborn]) for _ in range(2)]
        kids.append(subprocess.Popen(["sleep", "120"]))
        open({str(pids)!r}, "w").write(" ".join(str(k.pid) for k in kids))
        time.sleep(120)
    """
    with Running(py(code), stop_timeout=0.5) as sup:
        assert wait_until(lambda: pids.exists() and pids.read_text())
        grandchildren = [int(p) for p in pids.read_text().split()]
        assert all(psutil.pid_exists(p) for p in grandchildren)
        sup.stop()
        assert wait_until(lambda: sup.state == STOPPED)
    assert wait_until(lambda: all(gone(p) for p in grandchildren), timeout=3)


def test_processes_left_by_a_crashed_child_are_cleaned_up_before_the_restart(tmp_path):
    first_run = tmp_path / "first-run"
    pids = tmp_path / "pids"
    code = f"""
        import os, subprocess, sys, time
        if not os.path.exists({str(first_run)!r}):
            open({str(first_run)!r}, "w").close()
            g = subprocess.Popen(["sleep", "120"])
            open({str(pids)!r}, "w").write(str(g.pid))
            sys.exit(1)
        time.sleep(120)
    """
    with Running(py(code)) as sup:
        assert wait_until(lambda: sup.snapshot()["restarts"] == 1 and sup.state == RUNNING)
        assert wait_until(lambda: gone(int(pids.read_text())), timeout=3)


def test_a_child_that_crashed_on_a_damaged_store_starts_again_after_the_repair(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    marker = store / "00000000.gob"
    marker.write_text("ok")
    repairs = []

    def preflight():
        if marker.read_text() != "ok":
            marker.write_text("ok")
            repairs.append("repaired")
            return StartCheck(ok=True, repaired=True, detail="rewrote 00000000.gob")
        return StartCheck(ok=True)

    code = f"""
        import sys, time
        while True:
            if open({str(marker)!r}).read() != "ok":
                sys.exit(7)  # as chromem does: refuses to load a damaged store
            time.sleep(0.02)
    """
    with Running(py(code), preflight=preflight) as sup:
        assert wait_until(lambda: sup.state == RUNNING)
        first_pid = sup.snapshot()["pid"]
        marker.write_text("\x00damaged")
        assert wait_until(lambda: sup.snapshot()["restarts"] == 1 and sup.state == RUNNING)
        snap = sup.snapshot()
        time.sleep(0.2)  # the restarted child keeps running on the repaired store
        assert sup.state == RUNNING and sup.snapshot()["pid"] == snap["pid"] != first_pid
    assert repairs == ["repaired"] and marker.read_text() == "ok"
    assert snap["last_exit_code"] == 7


DRIVER = """
import sys
from guardian.runtime.supervisor import RestartPolicy, Supervisor, install_signal_handlers
sup = Supervisor(sys.argv[1:], policy=RestartPolicy(backoff_initial=0.01), stop_timeout=3.0, poll_interval=0.01)
install_signal_handlers(sup)
sys.exit(sup.run_forever())
"""


def test_signals_to_guardian_are_forwarded_to_the_child(tmp_path):
    log = tmp_path / "signals.log"
    ready = tmp_path / "ready"
    child = f"""
        import signal, sys, time
        def record(signum, frame):
            with open({str(log)!r}, "a") as f:
                f.write(signal.Signals(signum).name + "\\n")
            if signum == signal.SIGTERM:
                sys.exit(0)
        signal.signal(signal.SIGHUP, record)
        signal.signal(signal.SIGTERM, record)
        open({str(ready)!r}, "w").close()
        while True:
            time.sleep(0.05)
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, *py(child)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(ready.exists), driver.stderr.read1() if driver.poll() is not None else "no child"
        kids = psutil.Process(driver.pid).children()
        assert len(kids) == 1 and os.getpgid(kids[0].pid) == kids[0].pid  # its own group
        driver.send_signal(signal.SIGHUP)
        assert wait_until(lambda: log.exists() and "SIGHUP" in log.read_text())
        assert driver.poll() is None and kids[0].is_running()
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(10) == 0
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert log.read_text().split() == ["SIGHUP", "SIGTERM"]
    assert gone(kids[0].pid)


def test_the_child_does_not_inherit_systemds_notify_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/user/1000/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.setenv("GUARDIAN_TEST_MARK", "kept")
    out = tmp_path / "env.json"
    code = f"""
        import json, os, time
        json.dump(dict(os.environ), open({str(out)!r} + ".tmp", "w"))
        os.rename({str(out)!r} + ".tmp", {str(out)!r})
        time.sleep(30)
    """
    with Running(py(code)):
        assert wait_until(out.exists)
    import json
    env = json.loads(out.read_text())
    assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env and env["GUARDIAN_TEST_MARK"] == "kept"


def test_a_child_that_crashed_on_a_real_damaged_chromem_store_restarts_after_the_repair(tmp_path, plain_store):
    """The child refuses the store exactly when chromem would (scan_store's verdict); the pre-flight
    moves the damaged file out (a small stand-in for guardian's repair) and the child starts again."""
    from guardian.local.fsutil import durable_move
    from guardian.store.scan import scan_store

    quarantine = tmp_path / "quarantine"
    moved = []

    def preflight():
        scan = scan_store(plain_store)
        for problem in scan.problems:
            if problem.severity == "fatal":
                durable_move(plain_store / problem.path, quarantine / problem.path)
                moved.append(problem.path)
        after = scan_store(plain_store)
        return StartCheck(ok=after.loadable, repaired=bool(moved), detail=after.error or "")

    child = f"""
        import sys, time
        from guardian.store.scan import scan_store
        while True:
            if not scan_store({str(plain_store)!r}).loadable:
                sys.exit(1)  # contextd: NewPersistentDB refuses the store
            time.sleep(0.05)
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with Running(py(child), preflight=preflight, spawn=lambda cmd: spawn_process(cmd, env=env)) as sup:
        assert wait_until(lambda: sup.state == RUNNING)
        victim = next(p for p in sorted((plain_store).glob("*/*.gob")) if p.name != "00000000.gob")
        victim.write_bytes(victim.read_bytes()[:40])  # a torn write, as chromem leaves it
        assert wait_until(lambda: sup.snapshot()["restarts"] == 1 and sup.state == RUNNING)
        snap = sup.snapshot()
    assert snap["last_exit_code"] == 1 and snap["failures_in_window"] == 1
    relative = str(victim.relative_to(plain_store))
    assert moved == [relative] and (quarantine / relative).exists() and scan_store(plain_store).loadable


def test_a_bug_in_a_step_still_stops_the_child():
    class Buggy(Supervisor):
        def watch_child(self):
            if self.snapshot()["uptime"] > 0.1:
                raise RuntimeError("bug")
            super().watch_child()

    sup = Buggy(py("import time; time.sleep(60)"), policy=FAST, stop_timeout=2.0, poll_interval=0.01,
                heartbeat=lambda: None, sd_notify=lambda m: False)
    pids = []
    sup.on_state_change = lambda old, new, snap: pids.append(snap["pid"]) if new == RUNNING else None
    with pytest.raises(RuntimeError, match="bug"):
        sup.run_forever()
    assert len(pids) == 1 and gone(pids[0]) and sup.snapshot()["pid"] is None
