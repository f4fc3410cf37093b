"""The supervisor: keeps one child command running next to the store it depends on.

One thread (the caller of :meth:`Supervisor.run_forever`, normally the main thread) owns the
child. Everything else -- signal handlers, the control socket, the HTTP endpoint -- only posts a
message into the :class:`~guardian.runtime.supervisor.inbox.Inbox`; the loop takes the messages
and acts. The loop is the restart state machine of ``supervisor.states``, made of overridable
steps; what it knows of the child is its :class:`~guardian.runtime.supervisor.record.SupervisionRecord`,
and stopping the child's group is :class:`~guardian.runtime.supervisor.stopping.GroupStopper`'s.

Clock, sleep and the process factory are constructor arguments, so tests drive restarts,
backoff and FATAL with a fake clock and fake processes without waiting.
"""

from __future__ import annotations

import random
import signal
import time
from typing import Any, Callable, Sequence

from guardian.errors import SupervisorError
from guardian.logs import get_logger
from guardian.restart.backoff import backoff_delay
from guardian.restart.policy import RestartPolicy, after_failure
from guardian.runtime import alerts, sd_notify as notify
from guardian.runtime.supervisor.inbox import STOP_SIGNALS, Inbox, Reply
from guardian.runtime.supervisor.process import ChildProcess, signal_name, spawn_process
from guardian.runtime.supervisor.record import SupervisionRecord
from guardian.runtime.supervisor.states import (  # noqa: F401 (the states are imported from here too)
    BACKOFF, FATAL, PAUSED, RUNNING, STARTING, STATES, STOPPED, STOPPING, StartCheck,
)
from guardian.runtime.supervisor.stopping import KILL_GRACE_SECONDS, GroupStopper

MAX_IDLE_WAIT = 1.0


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

        self.record = SupervisionRecord(since=wall_clock())
        self.inbox = Inbox()
        self.stopper = GroupStopper(self.log, clock, self.pause, self.stop_timeout, self.hurry_requested)
        self.exit_code = 0
        self.ready_sent = False
        self.resume_state = STARTING
        self._loop_running = False
        self._shutting_down = False

    @property
    def state(self) -> str:
        return self.record.state

    @property
    def restarts(self) -> int:
        return self.record.restarts

    # ---- public API (any thread) -------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop the child (SIGTERM, then SIGKILL after stop_timeout) and return."""
        self.inbox.put("stop", signal.SIGTERM)

    def notify_signal(self, signum: int) -> None:
        """Record a signal for the loop; the only thing signal handlers do."""
        self.inbox.put("signal", signum)

    def request_restart(self) -> None:
        """Clear FATAL and the failure history, and (re)start the child now (`guardian restart`)."""
        self.inbox.put("restart")

    def pause_child(self, timeout: float | None = None) -> dict:
        """Stop the child and keep it stopped until :meth:`resume_child` (used around a restore)."""
        return self._ask("pause", timeout)

    def resume_child(self, timeout: float | None = None) -> dict:
        """Start the child again after :meth:`pause_child` (pre-flight first); FATAL stays FATAL."""
        return self._ask("resume", timeout)

    def snapshot(self) -> dict:
        """The supervisor's state for `status` and /healthz."""
        return self.record.snapshot(self.clock(), self.cmd, self.policy)

    def _ask(self, kind: str, timeout: float | None) -> dict:
        if not self._loop_running:
            raise SupervisorError(f"cannot {kind} the child: the supervisor loop is not running",
                                  "start it with guardian run")
        return self.inbox.ask(kind, timeout if timeout is not None else self.stop_timeout + KILL_GRACE_SECONDS + 30)

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
            if self.record.process is not None:  # an unexpected error in a step: never leave an orphan
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
            notify_on_exit(lambda pid=process.pid: self.inbox.put("child_exit", pid))
        self.record.started(process, self.clock())
        self.log.info("child_started", pid=process.pid, restarts=self.record.restarts)
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
        process = self.record.process
        returncode = process.poll() if process is not None else 0
        if returncode is None:
            self.wait_for_message(self.poll_interval)
            return
        self.on_exit(returncode)

    def on_exit(self, returncode: int) -> None:
        """The child exited without being asked to: clean up its group, then restart or give up."""
        record = self.record
        process, started_at = record.process, record.started_at
        self.stopper.clean_up(process)
        record.ended(returncode)
        self.log.warning("child_exited", **record.last_exit, pid=process.pid)
        if returncode == 0 and not self.restart_on_clean_exit:
            self.exit_code = 0
            self.set_state(STOPPED)
            return
        self.on_failure(started_at, f"child exited unexpectedly ({record.describe_last_exit()})")

    def on_failure(self, started_at: float | None, reason: str) -> None:
        now = self.clock()
        verdict = after_failure(self.record.history, started_at, now, self.policy)
        self.record.failed(verdict.history, reason)
        if verdict.fatal:
            self.enter_fatal(reason)
            return
        delay = self.backoff_delay(verdict.attempt)
        self.record.retry_at = now + delay
        self.log.warning("child_restart_scheduled", reason=reason, delay=round(delay, 3),
                         attempt=verdict.attempt, failures_in_window=len(verdict.history.times))
        self.set_state(BACKOFF)

    def backoff_delay(self, attempt: int) -> float:
        policy = self.policy
        return backoff_delay(attempt, policy.backoff_initial, policy.backoff_max, policy.jitter_fraction, self.rng)

    def enter_fatal(self, reason: str) -> None:
        record = self.record
        failures = len(record.history.times)
        record.fatal_reason = f"{failures} failures within {self.policy.failure_window:g}s; last: {reason}"
        self.log.error("child_fatal", reason=record.fatal_reason,
                       hint="fix the cause, then run `guardian restart` (or restart the service)")
        self.set_state(FATAL)
        if self.alerter is not None:
            self.alerter.send(alerts.CHILD_FATAL, reason=record.fatal_reason, command=self.cmd,
                              failures=failures, **record.last_exit)

    def wait_backoff(self) -> None:
        remaining = (self.record.retry_at or 0.0) - self.clock()
        if remaining <= 0:
            self.set_state(STARTING)
            return
        self.wait_for_message(min(remaining, MAX_IDLE_WAIT))

    def idle(self) -> None:
        self.wait_for_message(MAX_IDLE_WAIT)

    def set_state(self, new: str) -> None:
        old = self.state
        if new == old:
            return
        self.record.move_to(new, self.wall_clock())
        self.log.info("supervisor_state", old=old, new=new)
        if self.on_state_change is not None:
            try:
                self.on_state_change(old, new, self.snapshot())
            except Exception as exc:  # an observer's bug must not stop supervision
                self.log.error("state_callback_error", error=f"{type(exc).__name__}: {exc}")

    # ---- messages ----------------------------------------------------------------------------

    def wait_for_message(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds, returning early when a message arrives (real mode)."""
        if self.sleep is not None:
            self.sleep(timeout)
        else:
            self.inbox.wait(timeout)

    def handle_messages(self) -> None:
        for kind, value in self.inbox.take():
            if self.state == STOPPED:
                Inbox.answer(value, self.snapshot())
                continue
            getattr(self, f"on_{kind}_message")(value)

    def on_signal_message(self, signum: int) -> None:
        self.log.info("signal_received", signal=signal_name(signum))
        if signum in STOP_SIGNALS:
            self.shutdown(signum)
        elif self.record.process is not None:
            self.record.process.signal_group(signum)

    def on_child_exit_message(self, _pid: int) -> None:
        """Only a wake-up: the running step polls the child and handles its exit."""

    def on_stop_message(self, signum: int) -> None:
        self.shutdown(signum)

    def on_restart_message(self, _value: Any) -> None:
        self.record.forgive()
        self.log.info("restart_requested", state=self.state)
        if self.state == PAUSED:
            self.resume_state = STARTING
            return
        if self.record.process is not None:
            self.set_state(STOPPING)
            self.stop_child()
        self.set_state(STARTING)

    def on_pause_message(self, reply: Reply) -> None:
        if self.state != PAUSED:
            self.resume_state = FATAL if self.state == FATAL else STARTING
            if self.record.process is not None:
                self.set_state(STOPPING)
                self.stop_child()
            self.set_state(PAUSED)
        Inbox.answer(reply, self.snapshot())

    def on_resume_message(self, reply: Reply) -> None:
        if self.state == PAUSED:
            self.set_state(self.resume_state)
        Inbox.answer(reply, self.snapshot())

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
        process = self.record.process
        if process is None:
            return
        self.log.info("child_stopping", pid=process.pid, signal=signal_name(first_signal),
                      timeout=self.stop_timeout)
        self.record.ended(self.stopper.terminate(process, first_signal))
        self.log.info("child_stopped", pid=process.pid, **self.record.last_exit)

    def hurry_requested(self) -> bool:
        """While shutting down, a second SIGTERM/SIGINT means: stop waiting, SIGKILL now."""
        if not self._shutting_down or not self.inbox.take_stop_signals():
            return False
        self.log.warning("stop_hurried", hint="a second stop signal: killing the child now")
        return True

    def pause(self, seconds: float) -> None:
        (self.sleep or time.sleep)(seconds)
