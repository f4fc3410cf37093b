"""The supervisor: keeps one child command running next to the store it depends on.

One thread (the caller of :meth:`Supervisor.run_forever`, normally the main thread) owns the
child. Everything else -- signal handlers, the control socket, the HTTP endpoint -- only posts a
message into the inbox (a ``queue.SimpleQueue``, safe from signal handlers); the loop takes the
messages and acts. The loop is a small state machine made of overridable steps::

    starting --preflight+spawn--> running --exit--> backoff --delay--> starting
                                     \\--too many failures in the window--> fatal
    any --stop/SIGTERM/SIGINT--> stopping --> stopped        fatal --restart--> starting
    running --pause (restore)--> paused --resume--> starting

Clock, sleep and the process factory are constructor arguments, so tests drive restarts,
backoff and FATAL with a fake clock and fake processes without waiting.
"""

from __future__ import annotations

import queue
import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from guardian.runtime import alerts, sd_notify as notify
from guardian.errors import SupervisorError
from guardian.logs import get_logger
from guardian.restart.backoff import backoff_delay
from guardian.restart.policy import FailureHistory, RestartPolicy, after_failure, describe_exit
from guardian.runtime.supervisor.process import ChildProcess, signal_name, spawn_process

STARTING = "starting"
RUNNING = "running"
BACKOFF = "backoff"
PAUSED = "paused"
STOPPING = "stopping"
STOPPED = "stopped"
FATAL = "fatal"
STATES = (STARTING, RUNNING, BACKOFF, PAUSED, STOPPING, STOPPED, FATAL)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_POLL_FIRST_SECONDS = 0.001  # polls start fast (most children exit at once) and slow down
STOP_POLL_SECONDS = 0.02
KILL_GRACE_SECONDS = 5.0
MAX_IDLE_WAIT = 1.0


@dataclass(frozen=True)
class StartCheck:
    """What the pre-flight hook (check + repair) found: ``ok`` False means do not start the child."""

    ok: bool = True
    detail: str = ""
    repaired: bool = False

    @classmethod
    def coerce(cls, value: Any) -> "StartCheck":
        if isinstance(value, StartCheck):
            return value
        if value is None:
            return cls(ok=True)
        if isinstance(value, bool):
            return cls(ok=value)
        return cls(ok=bool(getattr(value, "ok", True)), detail=str(getattr(value, "detail", "")),
                   repaired=bool(getattr(value, "repaired", False)))


class Supervisor:
    """Run ``cmd`` in its own process group; restart it when it dies; stop it cleanly.

    ``preflight()`` runs before every (re)start; ``on_state_change(old, new, snapshot)`` is called
    on every transition (from the loop thread). ``sleep`` replaces the interruptible wait of the
    loop (and the poll pauses of the stop sequence); ``spawn(cmd)`` returns a ChildProcess.
    """

    def __init__(self, cmd: Sequence[str], config: Any = None,
                 preflight: Callable[[], Any] | None = None,
                 alerter: alerts.Alerter | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] | None = None,
                 spawn: Callable[[Sequence[str]], ChildProcess] = spawn_process,
                 on_state_change: Callable[[str, str, dict], None] | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random,
                 poll_interval: float = 0.1,
                 restart_on_clean_exit: bool = True,
                 sd_notify: Callable[[str], bool] = notify.sd_notify,
                 heartbeat: Callable[[], Any] | None = None,
                 policy: RestartPolicy | None = None,
                 stop_timeout: float | None = None) -> None:
        if not cmd:
            raise SupervisorError("no command to supervise", "pass the command after `--`: guardian run -- CMD ARGS")
        self.cmd = list(cmd)
        self.policy = policy or (RestartPolicy.from_config(config) if config is not None else RestartPolicy())
        self.stop_timeout = stop_timeout if stop_timeout is not None else getattr(config, "stop_timeout", 10.0)
        self.preflight = preflight or (lambda: StartCheck(ok=True))
        self.alerter = alerter
        self.clock = clock
        self.sleep = sleep
        self.spawn = spawn
        self.on_state_change = on_state_change
        self.wall_clock = wall_clock
        self.rng = rng
        self.poll_interval = poll_interval
        self.restart_on_clean_exit = restart_on_clean_exit
        self.sd_notify = sd_notify
        self.heartbeat = heartbeat or notify.WatchdogPinger.from_environment()
        self.log = get_logger("guardian.runtime.supervisor")

        self.state = STARTING
        self.since = wall_clock()
        self.process: ChildProcess | None = None
        self.started_at: float | None = None
        self.retry_at: float | None = None
        self.history = FailureHistory()
        self.spawns = 0
        self.restarts = 0
        self.last_exit: dict = describe_exit(None)
        self.last_error = ""
        self.fatal_reason = ""
        self.exit_code = 0
        self.ready_sent = False
        self.resume_state = STARTING
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: list[tuple] = []
        self._lock = threading.Lock()
        self._loop_running = False
        self._shutting_down = False

    # ---- public API (any thread) -------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop the child (SIGTERM, then SIGKILL after stop_timeout) and return."""
        self._inbox.put(("stop", signal.SIGTERM))

    def notify_signal(self, signum: int) -> None:
        """Record a signal for the loop; the only thing signal handlers do."""
        self._inbox.put(("signal", signum))

    def request_restart(self) -> None:
        """Clear FATAL and the failure history, and (re)start the child now (`guardian restart`)."""
        self._inbox.put(("restart", None))

    def pause_child(self, timeout: float | None = None) -> dict:
        """Stop the child and keep it stopped until :meth:`resume_child` (used around a restore)."""
        return self._ask("pause", timeout)

    def resume_child(self, timeout: float | None = None) -> dict:
        """Start the child again after :meth:`pause_child` (pre-flight first); FATAL stays FATAL."""
        return self._ask("resume", timeout)

    def snapshot(self) -> dict:
        """The supervisor's state for `status` and /healthz."""
        with self._lock:
            process = self.process
            return {
                "state": self.state,
                "since": self.since,
                "pid": getattr(process, "pid", None) if process is not None else None,
                "uptime": (self.clock() - self.started_at
                           if process is not None and self.started_at is not None else None),
                "command": list(self.cmd),
                "restarts": self.restarts,
                "failures_in_window": len(self.history.times),
                "max_failures": self.policy.max_failures,
                "failure_window": self.policy.failure_window,
                "last_exit_code": self.last_exit.get("exit_code"),
                "last_exit_signal": self.last_exit.get("signal"),
                "last_error": self.last_error or None,
                "fatal_reason": self.fatal_reason or None,
                "retry_in": (max(0.0, self.retry_at - self.clock())
                             if self.state == BACKOFF and self.retry_at is not None else None),
            }

    # ---- the loop ----------------------------------------------------------------------------

    def run_forever(self) -> int:
        """Supervise until stopped; returns guardian's exit code (0 after a requested stop)."""
        self._loop_running = True
        self.log.info("supervisor_start", command=self.cmd)
        try:
            while self.state != STOPPED:
                self.heartbeat()
                self.handle_messages()
                if self.state != STOPPED:
                    self.step()
        finally:
            if self.process is not None:  # an unexpected error in a step: never leave an orphan
                self.stop_child()
            self._loop_running = False
        self.log.info("supervisor_stopped", exit_code=self.exit_code)
        return self.exit_code

    def step(self) -> None:
        steps = {STARTING: self.start_child, RUNNING: self.watch_child, BACKOFF: self.wait_backoff,
                 FATAL: self.idle, PAUSED: self.idle}
        steps[self.state]()

    def start_child(self) -> None:
        result = self.run_preflight()
        if not self.ready_sent:
            self.ready_sent = True
            self.sd_notify(notify.READY)
        if not result.ok:
            self.on_failure(None, f"pre-flight failed: {result.detail or 'store not usable'}")
            return
        try:
            process = self.spawn(self.cmd)
        except OSError as exc:
            self.on_failure(None, f"cannot start {self.cmd[0]!r}: {exc.strerror or exc}")
            return
        notify_on_exit = getattr(process, "notify_on_exit", None)
        if notify_on_exit is not None:  # optional: wakes the loop at once instead of at the next poll
            notify_on_exit(lambda pid=process.pid: self._inbox.put(("child_exit", pid)))
        with self._lock:
            self.process = process
            self.started_at = self.clock()
            if self.spawns:
                self.restarts += 1
            self.spawns += 1
        self.log.info("child_started", pid=process.pid, restarts=self.restarts)
        self.set_state(RUNNING)

    def run_preflight(self) -> StartCheck:
        try:
            result = StartCheck.coerce(self.preflight())
        except Exception as exc:  # a broken check must not kill the supervisor
            self.log.error("preflight_error", error=f"{type(exc).__name__}: {exc}")
            return StartCheck(ok=False, detail=f"{type(exc).__name__}: {exc}")
        if result.repaired:
            self.log.info("preflight_repaired", detail=result.detail)
        return result

    def watch_child(self) -> None:
        returncode = self.process.poll() if self.process is not None else 0
        if returncode is None:
            self.wait_for_message(self.poll_interval)
            return
        self.on_exit(returncode)

    def on_exit(self, returncode: int) -> None:
        """The child exited without being asked to: clean up its group, then restart or give up."""
        process, started_at = self.process, self.started_at
        self.clean_up_group(process)
        with self._lock:
            self.process = None
            self.last_exit = describe_exit(returncode)
        self.log.warning("child_exited", **self.last_exit, pid=process.pid)
        if returncode == 0 and not self.restart_on_clean_exit:
            self.exit_code = 0
            self.set_state(STOPPED)
            return
        self.on_failure(started_at, f"child exited unexpectedly ({self.describe_last_exit()})")

    def on_failure(self, started_at: float | None, reason: str) -> None:
        now = self.clock()
        verdict = after_failure(self.history, started_at, now, self.policy)
        with self._lock:
            self.history = verdict.history
            self.last_error = reason
        if verdict.fatal:
            self.enter_fatal(reason)
            return
        delay = self.backoff_delay(verdict.attempt)
        self.retry_at = now + delay
        self.log.warning("child_restart_scheduled", reason=reason, delay=round(delay, 3),
                         attempt=verdict.attempt, failures_in_window=len(verdict.history.times))
        self.set_state(BACKOFF)

    def backoff_delay(self, attempt: int) -> float:
        policy = self.policy
        return backoff_delay(attempt, policy.backoff_initial, policy.backoff_max, policy.jitter_fraction, self.rng)

    def enter_fatal(self, reason: str) -> None:
        failures = len(self.history.times)
        self.fatal_reason = (f"{failures} failures within {self.policy.failure_window:g}s; last: {reason}")
        self.log.error("child_fatal", reason=self.fatal_reason,
                       hint="fix the cause, then run `guardian restart` (or restart the service)")
        self.set_state(FATAL)
        self.alert(alerts.CHILD_FATAL, reason=self.fatal_reason, command=self.cmd,
                   failures=failures, **self.last_exit)

    def alert(self, event: str, **fields: Any) -> None:
        if self.alerter is not None:
            self.alerter.send(event, **fields)

    def wait_backoff(self) -> None:
        remaining = (self.retry_at or 0.0) - self.clock()
        if remaining <= 0:
            self.set_state(STARTING)
            return
        self.wait_for_message(min(remaining, MAX_IDLE_WAIT))

    def idle(self) -> None:
        self.wait_for_message(MAX_IDLE_WAIT)

    # ---- messages ----------------------------------------------------------------------------

    def wait_for_message(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds, returning early when a message arrives (real mode)."""
        if self.sleep is not None:
            self.sleep(timeout)
            return
        try:
            self._pending.append(self._inbox.get(timeout=max(0.0, timeout)))
        except queue.Empty:
            pass

    def take_messages(self) -> list[tuple]:
        messages, self._pending = self._pending, []
        while True:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                return messages

    def handle_messages(self) -> None:
        for kind, value in self.take_messages():
            if self.state == STOPPED:
                self._answer(value, self.snapshot())
                continue
            handler = getattr(self, f"on_{kind}_message")
            handler(value)

    def on_signal_message(self, signum: int) -> None:
        self.log.info("signal_received", signal=signal_name(signum))
        if signum in STOP_SIGNALS:
            self.shutdown(signum)
        elif self.process is not None:
            self.process.signal_group(signum)

    def on_child_exit_message(self, _pid: int) -> None:
        """Only a wake-up: the running step polls the child and handles its exit."""

    def on_stop_message(self, signum: int) -> None:
        self.shutdown(signum)

    def on_restart_message(self, _value: Any) -> None:
        with self._lock:
            self.history = FailureHistory()
            self.fatal_reason = ""
        self.log.info("restart_requested", state=self.state)
        if self.state == PAUSED:
            self.resume_state = STARTING
            return
        if self.process is not None:
            self.set_state(STOPPING)
            self.stop_child()
        self.set_state(STARTING)

    def on_pause_message(self, reply: "_Reply") -> None:
        if self.state != PAUSED:
            self.resume_state = FATAL if self.state == FATAL else STARTING
            if self.process is not None:
                self.set_state(STOPPING)
                self.stop_child()
            self.set_state(PAUSED)
        self._answer(reply, self.snapshot())

    def on_resume_message(self, reply: "_Reply") -> None:
        if self.state == PAUSED:
            self.set_state(self.resume_state)
        self._answer(reply, self.snapshot())

    def shutdown(self, signum: int = signal.SIGTERM) -> None:
        self._shutting_down = True
        self.set_state(STOPPING)
        self.sd_notify(notify.STOPPING)
        self.stop_child(signum)
        self.exit_code = 0
        self.set_state(STOPPED)

    # ---- stopping the child ------------------------------------------------------------------

    def stop_child(self, first_signal: int = signal.SIGTERM) -> None:
        """Signal the child's group, wait up to stop_timeout, SIGKILL the group, reap."""
        process = self.process
        if process is None:
            return
        self.log.info("child_stopping", pid=process.pid, signal=signal_name(first_signal),
                      timeout=self.stop_timeout)
        returncode = self.terminate_group(process, first_signal)
        with self._lock:
            self.process = None
            self.last_exit = describe_exit(returncode)
        self.log.info("child_stopped", pid=process.pid, **self.last_exit)

    def clean_up_group(self, process: ChildProcess) -> None:
        """After the leader died on its own: make sure nothing it left in its group survives."""
        process.reap_group_members()
        if process.group_alive():
            self.log.warning("child_left_processes", pgid=process.pid)
            self.terminate_group(process, signal.SIGTERM)

    def terminate_group(self, process: ChildProcess, first_signal: int) -> int | None:
        process.signal_group(first_signal)
        if self.wait_group_gone(process, self.stop_timeout):
            return process.poll()
        self.log.warning("child_kill", pid=process.pid, after=self.stop_timeout)
        process.signal_group(signal.SIGKILL)
        if not self.wait_group_gone(process, KILL_GRACE_SECONDS):
            self.log.error("child_unkillable", pid=process.pid)
        return process.poll()

    def wait_group_gone(self, process: ChildProcess, timeout: float) -> bool:
        deadline = self.clock() + timeout
        pause = STOP_POLL_FIRST_SECONDS
        while True:
            leader_done = process.poll() is not None
            if leader_done:
                process.reap_group_members()
            if leader_done and not process.group_alive():
                return True
            if self.clock() >= deadline or self.hurry_requested():
                return False
            self.pause(pause)
            pause = min(pause * 2, STOP_POLL_SECONDS)

    def hurry_requested(self) -> bool:
        """While shutting down, a second SIGTERM/SIGINT means: stop waiting, SIGKILL now."""
        if not self._shutting_down:
            return False
        messages = self.take_messages()
        hurry = any(kind == "signal" and value in STOP_SIGNALS for kind, value in messages)
        self._pending = [m for m in messages if not (m[0] == "signal" and m[1] in STOP_SIGNALS)]
        if hurry:
            self.log.warning("stop_hurried", hint="a second stop signal: killing the child now")
        return hurry

    def pause(self, seconds: float) -> None:
        (self.sleep or time.sleep)(seconds)

    # ---- helpers -----------------------------------------------------------------------------

    def set_state(self, new: str) -> None:
        old = self.state
        if new == old:
            return
        with self._lock:
            self.state = new
            self.since = self.wall_clock()
        self.log.info("supervisor_state", old=old, new=new)
        if self.on_state_change is not None:
            try:
                self.on_state_change(old, new, self.snapshot())
            except Exception as exc:  # an observer's bug must not stop supervision
                self.log.error("state_callback_error", error=f"{type(exc).__name__}: {exc}")

    def describe_last_exit(self) -> str:
        if self.last_exit.get("signal"):
            return f"killed by {self.last_exit['signal']}"
        return f"exit code {self.last_exit.get('exit_code')}"

    def _ask(self, kind: str, timeout: float | None) -> dict:
        if not self._loop_running:
            raise SupervisorError(f"cannot {kind} the child: the supervisor loop is not running",
                                  "start it with guardian run")
        reply = _Reply()
        self._inbox.put((kind, reply))
        wait = timeout if timeout is not None else self.stop_timeout + KILL_GRACE_SECONDS + 30
        if not reply.done.wait(wait):
            raise SupervisorError(f"the supervisor did not {kind} the child within {wait:g}s",
                                  "see guardian's log; the child may be stuck")
        return reply.value

    @staticmethod
    def _answer(reply: Any, value: dict) -> None:
        if isinstance(reply, _Reply):
            reply.value = value
            reply.done.set()


class _Reply:
    """A one-shot answer from the loop thread to a caller in another thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: dict = {}
