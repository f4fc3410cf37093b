"""The supervisor's loop driven by a fake clock and scripted fake processes: no real waiting."""

import signal
import sys
import threading
import time
import json

import pytest

from guardian.runtime.alerts import Alerter, CHILD_FATAL
from guardian.errors import SupervisorError
from tests.waiting import wait_for
from guardian.runtime.supervisor import (
    BACKOFF, FATAL, PAUSED, RUNNING, STARTING, STOPPED, StartCheck, RestartPolicy, Supervisor,
)

POLICY = RestartPolicy(backoff_initial=1.0, backoff_max=8.0, jitter_fraction=0.0, stable_seconds=60.0,
                       max_failures=4, failure_window=300.0)


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.slept += seconds
        time.sleep(0.0005)  # lets other threads of the test run; fake time does the waiting


class FakeProcess:
    """Exits by itself after ``lifetime`` fake seconds with ``code``; obeys signals unless stubborn."""

    def __init__(self, clock, pid, lifetime=None, code=1, ignores_term=False):
        self.clock, self.pid = clock, pid
        self.started = clock()
        self.lifetime, self.code, self.ignores_term = lifetime, code, ignores_term
        self.returncode = None
        self.signals = []

    def poll(self):
        if self.returncode is None and self.lifetime is not None and self.clock() - self.started >= self.lifetime:
            self.returncode = self.code
        return self.returncode

    def signal_group(self, signum):
        self.signals.append(signum)
        if self.returncode is None and (signum == signal.SIGKILL or
                                        (signum in (signal.SIGTERM, signal.SIGINT) and not self.ignores_term)):
            self.returncode = -signum
        return True

    def group_alive(self):
        return self.poll() is None

    def reap_group_members(self):
        return 0


class Factory:
    """Hands out FakeProcesses described by a list of dicts (the last one repeats)."""

    def __init__(self, clock, *plans):
        self.clock, self.plans, self.spawned = clock, list(plans), []

    def __call__(self, cmd):
        plan = self.plans[min(len(self.spawned), len(self.plans) - 1)]
        if plan.get("error"):
            self.spawned.append(None)
            raise FileNotFoundError(2, "No such file or directory")
        proc = FakeProcess(self.clock, 100 + len(self.spawned), **plan)
        self.spawned.append(proc)
        return proc


def make(clock, factory, **kwargs):
    notes = []
    transitions = []
    kwargs.setdefault("policy", POLICY)
    kwargs.setdefault("stop_timeout", 10.0)
    sup = Supervisor(["child"], clock=clock, sleep=clock.sleep, spawn=factory, wall_clock=clock,
                     sd_notify=lambda m: notes.append(m) or True, heartbeat=lambda: None,
                     on_state_change=lambda old, new, snap: transitions.append(new), **kwargs)
    sup.notes, sup.transitions = notes, transitions
    return sup


def drive(sup, until, max_steps=10_000):
    for _ in range(max_steps):
        if until():
            return
        sup.handle_messages()
        if sup.state == STOPPED:
            return
        sup.step()
    raise AssertionError(f"condition not reached; state={sup.state}")


def stop_when(sup, state):
    previous = sup.on_state_change

    def watch(old, new, snap):
        previous(old, new, snap)
        if new == state:
            sup.stop()

    sup.on_state_change = watch


def test_a_crash_loop_reaches_fatal_with_growing_backoff(tmp_path):
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": 0.5, "code": 3})
    sink = tmp_path / "alerts.jsonl"
    append_stdin = "import sys; open(sys.argv[1], 'a').write(sys.stdin.read() + chr(10))"
    alerter = Alerter(f'{sys.executable} -c "{append_stdin}" {sink}')
    sup = make(clock, factory, alerter=alerter)
    stop_when(sup, FATAL)
    started = clock.now
    assert sup.run_forever() == 0
    assert len(factory.spawned) == POLICY.max_failures
    assert FATAL in sup.transitions and sup.transitions.count(BACKOFF) == POLICY.max_failures - 1
    # runs of 0.5 s each, plus backoff 1 + 2 + 4 between them (no jitter); polling granularity 0.1 s
    assert clock.now - started == pytest.approx(4 * 0.5 + 1 + 2 + 4, abs=1.0)
    event = json.loads(sink.read_text().splitlines()[0])
    assert event["event"] == CHILD_FATAL and event["exit_code"] == 3 and event["failures"] == 4


def test_fatal_shows_in_the_snapshot_and_restart_clears_it():
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": 0.0, "code": 1}, {"lifetime": 0.0, "code": 1},
                      {"lifetime": 0.0, "code": 1}, {"lifetime": 0.0, "code": 1}, {"lifetime": None})
    sup = make(clock, factory)
    drive(sup, lambda: sup.state == FATAL)
    snap = sup.snapshot()
    assert snap["state"] == FATAL and snap["failures_in_window"] == 4 and snap["last_exit_code"] == 1
    assert "4 failures" in snap["fatal_reason"]
    before = len(factory.spawned)
    clock.sleep(3600)  # FATAL is sticky: time alone never restarts it
    for _ in range(20):
        sup.handle_messages()
        sup.step()
    assert sup.state == FATAL and len(factory.spawned) == before
    sup.request_restart()
    drive(sup, lambda: sup.state == RUNNING)
    snap = sup.snapshot()
    assert snap["failures_in_window"] == 0 and snap["fatal_reason"] is None
    assert snap["restarts"] == before and snap["pid"] == factory.spawned[-1].pid


def test_a_stable_run_resets_the_backoff():
    clock = FakeClock()
    quick = {"lifetime": 0.0, "code": 1}
    factory = Factory(clock, quick, quick, quick, {"lifetime": 120.0, "code": 1}, {"lifetime": None})
    sup = make(clock, factory, policy=RestartPolicy(backoff_initial=1.0, backoff_max=100.0, jitter_fraction=0.0,
                                                    stable_seconds=60.0, max_failures=99))
    delays = []
    original = sup.backoff_delay
    sup.backoff_delay = lambda attempt: delays.append(original(attempt)) or delays[-1]
    drive(sup, lambda: len(factory.spawned) == 5 and sup.state == RUNNING)
    assert delays == [1.0, 2.0, 4.0, 1.0]


def test_preflight_runs_before_every_start_and_a_failed_one_is_a_failure():
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": 1.0, "code": 2}, {"lifetime": None})
    answers = iter([StartCheck(ok=True), StartCheck(ok=False, detail="store damaged"),
                    RuntimeError("check crashed"), StartCheck(ok=True, repaired=True)])
    calls = []

    def preflight():
        calls.append(clock.now)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    sup = make(clock, factory, preflight=preflight)
    drive(sup, lambda: len(factory.spawned) == 2 and sup.state == RUNNING)
    assert len(calls) == 4  # ok (spawn, crash), refused, raised, ok (spawn)
    assert sup.snapshot()["failures_in_window"] == 3
    assert sup.snapshot()["last_error"] == "pre-flight failed: RuntimeError: check crashed"
    assert sup.notes.count("READY=1") == 1


def test_a_command_that_cannot_start_ends_fatal_with_the_reason():
    clock = FakeClock()
    sup = make(clock, Factory(clock, {"error": True}))
    drive(sup, lambda: sup.state == FATAL)
    snap = sup.snapshot()
    assert "cannot start 'child'" in snap["last_error"] and snap["pid"] is None


def test_stop_escalates_to_sigkill_after_the_stop_timeout():
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": None, "ignores_term": True})
    sup = make(clock, factory, stop_timeout=7.0)
    drive(sup, lambda: sup.state == RUNNING)
    t0 = clock.now
    sup.stop()
    drive(sup, lambda: sup.state == STOPPED)
    proc = factory.spawned[0]
    assert proc.signals == [signal.SIGTERM, signal.SIGKILL]
    assert 7.0 <= clock.now - t0 < 7.5
    assert sup.snapshot()["last_exit_signal"] == "SIGKILL" and "STOPPING=1" in sup.notes


def test_a_polite_child_is_stopped_without_sigkill():
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": None})
    sup = make(clock, factory)
    drive(sup, lambda: sup.state == RUNNING)
    sup.notify_signal(signal.SIGINT)
    drive(sup, lambda: sup.state == STOPPED)
    assert factory.spawned[0].signals == [signal.SIGINT]
    assert sup.exit_code == 0


def test_sighup_is_forwarded_and_the_child_keeps_running():
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": None})
    sup = make(clock, factory)
    drive(sup, lambda: sup.state == RUNNING)
    sup.notify_signal(signal.SIGHUP)
    sup.handle_messages()
    assert factory.spawned[0].signals == [signal.SIGHUP] and sup.state == RUNNING


def test_a_clean_exit_ends_supervision_when_asked():
    clock = FakeClock()
    sup = make(clock, Factory(clock, {"lifetime": 2.0, "code": 0}), restart_on_clean_exit=False)
    assert sup.run_forever() == 0
    assert sup.transitions[-1] == STOPPED and sup.restarts == 0


def test_restart_while_running_stops_then_starts_a_new_child():
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": None})
    sup = make(clock, factory)
    drive(sup, lambda: sup.state == RUNNING)
    sup.request_restart()
    drive(sup, lambda: len(factory.spawned) == 2 and sup.state == RUNNING)
    assert factory.spawned[0].signals == [signal.SIGTERM]
    assert sup.snapshot()["restarts"] == 1 and sup.snapshot()["failures_in_window"] == 0


def test_pause_and_resume_from_another_thread():
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": None})
    sup = make(clock, factory)
    loop = threading.Thread(target=sup.run_forever, daemon=True)
    loop.start()
    try:
        wait_for(lambda: sup.state == RUNNING, interval=0.001, what="the child to run")
        paused = sup.pause_child(timeout=5)
        assert paused["state"] == PAUSED and paused["pid"] is None
        assert factory.spawned[0].signals == [signal.SIGTERM]
        assert len(factory.spawned) == 1  # stays stopped while paused
        resumed = sup.resume_child(timeout=5)
        assert resumed["state"] in (STARTING, RUNNING)
        wait_for(lambda: len(factory.spawned) >= 2, interval=0.001, what="the second start")
        assert len(factory.spawned) == 2
    finally:
        sup.stop()
        loop.join(5)
    assert not loop.is_alive() and sup.state == STOPPED


def test_pause_without_a_running_loop_is_a_clear_error():
    clock = FakeClock()
    sup = make(clock, Factory(clock, {"lifetime": None}))
    with pytest.raises(SupervisorError, match="not running"):
        sup.pause_child(timeout=0.1)


def test_an_empty_command_is_refused():
    with pytest.raises(SupervisorError):
        Supervisor([])


def test_a_broken_state_observer_does_not_stop_supervision():
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": None})
    sup = make(clock, factory)
    sup.on_state_change = lambda old, new, snap: 1 / 0
    drive(sup, lambda: sup.state == RUNNING)
    assert factory.spawned[0].poll() is None


def test_snapshot_reports_backoff_and_retry_in():
    clock = FakeClock()
    sup = make(clock, Factory(clock, {"lifetime": 0.0, "code": 5}, {"lifetime": None}))
    drive(sup, lambda: sup.state == BACKOFF)
    snap = sup.snapshot()
    assert snap["state"] == BACKOFF and snap["retry_in"] == pytest.approx(1.0)
    assert snap["last_exit_code"] == 5 and snap["command"] == ["child"] and snap["since"] == clock.now


def test_a_second_stop_signal_kills_at_once():
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": None, "ignores_term": True})
    sup = make(clock, factory, stop_timeout=30.0)
    drive(sup, lambda: sup.state == RUNNING)
    real_sleep = clock.sleep

    def impatient_sleep(seconds):
        real_sleep(seconds)
        if sup.state == "stopping" and clock.now - t0 > 1.0:
            sup.notify_signal(signal.SIGINT)  # the user presses Ctrl-C again

    sup.sleep = impatient_sleep
    t0 = clock.now
    sup.notify_signal(signal.SIGTERM)
    drive(sup, lambda: sup.state == STOPPED)
    assert factory.spawned[0].signals == [signal.SIGTERM, signal.SIGKILL]
    assert clock.now - t0 < 2.0  # not the 30 s stop timeout


def test_a_stop_signal_during_a_restart_is_not_lost():
    clock = FakeClock()
    factory = Factory(clock, {"lifetime": None, "ignores_term": True})
    sup = make(clock, factory, stop_timeout=2.0)
    drive(sup, lambda: sup.state == RUNNING)
    real_sleep = clock.sleep
    sent = []

    def sleep(seconds):
        real_sleep(seconds)
        if sup.state == "stopping" and not sent:
            sent.append(sup.notify_signal(signal.SIGTERM))

    sup.sleep = sleep
    sup.request_restart()
    drive(sup, lambda: sup.state == STOPPED)
    assert sent and sup.exit_code == 0
