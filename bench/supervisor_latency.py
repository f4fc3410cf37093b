"""Supervisor latencies with real processes, each next to a raw subprocess baseline from the same run.

- restart: from SIGKILL of the child to the next child running (backoff 1 ms, so this is the
  supervisor's own overhead: poll interval, group clean-up, pre-flight hook, spawn)
- stop: from stop() to the child group being gone (a child that exits on SIGTERM)

Run: .venv/bin/python bench/supervisor_latency.py [rounds]
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guardian.runtime.supervisor import RUNNING, STOPPED, RestartPolicy, Supervisor  # noqa: E402

CHILD = ["sleep", "30"]
POLICY = RestartPolicy(backoff_initial=0.001, backoff_max=0.001, jitter_fraction=0.0, max_failures=10_000)


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.0005)


def baseline_spawn_and_kill(rounds: int) -> tuple[list[float], list[float]]:
    spawn, stop = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        proc = subprocess.Popen(CHILD, process_group=0)
        spawn.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        proc.terminate()
        proc.wait()
        stop.append(time.perf_counter() - t0)
    return spawn, stop


def supervised(rounds: int, poll_interval: float) -> tuple[list[float], list[float]]:
    restart = []
    sup = Supervisor(CHILD, policy=POLICY, stop_timeout=5.0, poll_interval=poll_interval,
                     sd_notify=lambda m: False, heartbeat=lambda: None)
    thread = threading.Thread(target=sup.run_forever, daemon=True)
    thread.start()
    wait_for(lambda: sup.state == RUNNING)
    for _ in range(rounds):
        pid = sup.snapshot()["pid"]
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: sup.snapshot()["pid"] not in (None, pid) and sup.state == RUNNING)
        restart.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    sup.stop()
    wait_for(lambda: sup.state == STOPPED)
    stop = [time.perf_counter() - t0]
    thread.join(5)
    return restart, stop


def supervised_stops(rounds: int, poll_interval: float) -> list[float]:
    stops = []
    for _ in range(rounds):
        sup = Supervisor(CHILD, policy=POLICY, stop_timeout=5.0, poll_interval=poll_interval,
                         sd_notify=lambda m: False, heartbeat=lambda: None)
        thread = threading.Thread(target=sup.run_forever, daemon=True)
        thread.start()
        wait_for(lambda: sup.state == RUNNING)
        t0 = time.perf_counter()
        sup.stop()
        wait_for(lambda: sup.state == STOPPED)
        stops.append(time.perf_counter() - t0)
        thread.join(5)
    return stops


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.2f} ms, max {max(values) * 1000:.2f} ms (n={len(values)})"


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    base_spawn, base_stop = baseline_spawn_and_kill(rounds)
    print(f"baseline Popen spawn:             {ms(base_spawn)}")
    print(f"baseline terminate+wait:          {ms(base_stop)}")
    for poll in (0.1, 0.01):
        restart, _ = supervised(rounds, poll)
        stop = supervised_stops(min(rounds, 10), poll)
        ratio = statistics.median(restart) / statistics.median(base_spawn)
        print(f"supervisor restart (poll {poll:g}s):  {ms(restart)}  = {ratio:.1f}x baseline spawn")
        print(f"supervisor stop (poll {poll:g}s):     {ms(stop)}  = "
              f"{statistics.median(stop) / statistics.median(base_stop):.1f}x baseline terminate+wait")


if __name__ == "__main__":
    main()
