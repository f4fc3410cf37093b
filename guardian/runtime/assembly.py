"""The one place that lists the runtime's parts: `guardian run -- CMD`, `guardian run` and `guardian serve`.

:func:`assemble` builds a :class:`Runtime`: a :class:`~guardian.runtime.context.RuntimeContext`, the
ordered parts, and the foreground the main thread runs (the supervisor, or a wait for a signal).
:meth:`Runtime.run` starts the parts in order, installs the one signal path (handlers only hand
the signal to the foreground's queue), runs the foreground, and stops every started part in
reverse order, whatever happens.

How to add a part:
  1. Write a class in ``guardian/runtime/parts/`` (subclass ``BasePart``): ``start()``, ``stop()``,
     ``status()``/``health()`` returning the keys it adds; talk to other parts only through ``ctx``
     (``ctx.on``/``ctx.emit`` for events, ``ctx.provide``/``ctx.ask`` for a service it answers).
  2. Add one line to :func:`assemble` at the position it must start in (it stops in reverse).
  3. Test it on its own with a ``RuntimeContext`` and through `guardian run` as a subprocess.
"""

from __future__ import annotations

import os
import queue
import signal

from guardian.runtime import sd_notify as notify
from guardian.runtime.context import RuntimeContext
from guardian.runtime.parts import BasePart, Foreground, Part
from guardian.runtime.parts.capture import CapturePart
from guardian.runtime.parts.control import ControlPart
from guardian.runtime.parts.health import StoreHealthPart
from guardian.runtime.parts.heartbeat import HeartbeatPart
from guardian.runtime.parts.http import HttpPart
from guardian.runtime.parts.index import IndexPart
from guardian.runtime.parts.live_repair import LiveRepairPart
from guardian.runtime.parts.lock import LockPart
from guardian.runtime.parts.mcp_answers import McpAnswersPart
from guardian.runtime.parts.preflight import PreflightPart
from guardian.runtime.parts.replication import ReplicationPart
from guardian.runtime.parts.snapshots import SnapshotPart
from guardian.runtime.parts.store_appears import WhenStoreAppears
from guardian.runtime.parts.supervisor import SupervisorPart
from guardian.runtime.parts.watcher import WatcherPart
from guardian.runtime.status import HEARTBEAT_SECONDS, StatusFile
from guardian.runtime.status_facts import collect_status
from guardian.runtime.supervisor.signals import install_signal_handlers


def assemble(config, paths, cmd: list[str] | None = None, *, guard: bool = True,
             watch: bool | None = None) -> "Runtime":
    """The runtime of `guardian run [-- CMD]` (``guard``: lock, repair, snapshots, control, status
    file) or of `guardian serve` (``guard=False``: index, watcher and HTTP only).

    ``watch`` None follows ``config.watch``.
    """
    ctx = RuntimeContext(config, paths, cmd)
    runtime = Runtime(ctx)
    watch = config.watch if watch is None else watch
    parts: list[Part] = []
    if guard:
        parts.append(LockPart(ctx))
    if watch:
        # first (after the lock): the store is listed once at start, by the pre-flight, and the index
        # builds on that listing, so every write from before that listing on must reach the watcher;
        # its handlers wait for ctx.started. With no store yet it starts when the store appears.
        parts.append(WhenStoreAppears(ctx, [WatcherPart(ctx, guard=guard)]))
    if guard:
        parts += [PreflightPart(ctx), SnapshotPart(ctx), ReplicationPart(ctx)]
        if watch and config.capture:
            parts.append(CapturePart(ctx))
    parts.append(IndexPart(ctx, background=guard, poll=not watch))
    if guard:
        parts.append(McpAnswersPart(ctx))  # `guardian mcp` sessions ask it over the control socket
    if watch:
        parts.append(StoreHealthPart(ctx))
        if guard and config.live_repair:
            parts.append(LiveRepairPart(ctx))
    if guard:
        parts.append(HttpPart(ctx, runtime.status_file_data, runtime.health, runtime.ready, runtime.status_dict))
        parts += [ControlPart(ctx, runtime.status_dict), HeartbeatPart(ctx, runtime.status_file_data)]
    else:  # serve: the sidecar's part of the status is whatever its status file says, if one runs
        parts.append(HttpPart(ctx, StatusFile(paths.status_file).read, ready=runtime.ready))
    foreground: Foreground = WaitForSignal(ctx)
    if ctx.cmd:
        foreground = SupervisorPart(ctx)
        parts.append(foreground)
    runtime.parts, runtime.foreground = parts, foreground
    return runtime


class WaitForSignal(BasePart):
    """The foreground without CMD: serve until SIGTERM/SIGINT; SIGHUP re-reads the store."""

    name = "wait"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.signals: queue.SimpleQueue = queue.SimpleQueue()

    def notify_signal(self, signum: int) -> None:
        self.signals.put(signum)

    def run(self) -> int:
        notify.sd_notify("READY=1\nSTATUS=serving searches")
        while True:
            try:
                signum = self.signals.get(timeout=1.0)  # a timeout keeps the main thread able to run handlers
            except queue.Empty:
                continue
            if signum == signal.SIGHUP:
                self.ctx.log.info("sighup_refresh_index")
                self.ctx.refresh_index(background=True)
                continue
            self.ctx.log.info("stopping", signal=signal.Signals(signum).name)
            return 0


class Runtime:
    """Parts started in order, the foreground run, parts stopped in reverse."""

    def __init__(self, ctx: RuntimeContext) -> None:
        self.ctx = ctx
        self.parts: list[Part] = []
        self.foreground: Foreground | None = None
        self.started: list[Part] = []

    def part(self, name: str) -> Part | None:
        return next((part for part in self.parts if part.name == name), None)

    def run(self, on_started=None) -> int:
        """Start everything, call ``on_started(runtime)``, run the foreground; returns its exit code."""
        self.ctx.paths.ensure()
        try:
            for part in self.parts:
                part.start()
                self.started.append(part)
            self.ctx.mark_started()
            restore_handlers = install_signal_handlers(self.foreground)
            try:
                if on_started is not None:
                    on_started(self)
                return self.foreground.run()
            finally:
                restore_handlers()
        finally:
            self.stop()

    def stop(self) -> None:
        if self.started:
            notify.sd_notify("STOPPING=1")
        for part in reversed(self.started):
            try:
                part.stop()
            except Exception as exc:  # keep stopping the rest
                self.ctx.log.warning("shutdown_step_failed", step=part.name, error=str(exc))
        self.started = []

    # ---- what the parts say, composed --------------------------------------------------------

    def sidecar_dict(self, running: bool) -> dict:
        ctx = self.ctx
        data = {"running": running, "pid": os.getpid(), "started_at": ctx.started_at,
                "updated_at": ctx.wall_clock(), "heartbeat_seconds": HEARTBEAT_SECONDS,
                "http": None, "child": None, "watcher": ctx.counters.to_dict(), "index": None}
        for part in self.parts:
            data.update(part.status())
        return data

    def status_file_data(self, running: bool = True) -> dict:
        return {"sidecar": self.sidecar_dict(running), "last_repair": self.ctx.last_repair}

    def status_dict(self) -> dict:
        """The status over the control socket: the runtime's shared scan when it has one (no walk)."""
        ctx = self.ctx
        return collect_status(ctx.config, ctx.paths, scan=ctx.last_scan, status_file_data=self.status_file_data())

    def health(self) -> dict:
        data = {"healthy": True, "status": "ok", "child": None}
        for part in self.parts:
            data.update(part.health())
        return data

    def ready(self) -> tuple[bool, str]:
        index = self.ctx.index
        if index is None or not index.built:
            return False, "index is being built"
        scan = self.ctx.last_scan  # kept current by the pre-flight, the health and the live repair parts
        if scan is not None:
            scan_ok = bool(scan.loadable)
        else:
            last_repair = self.ctx.last_repair
            scan_ok = last_repair.get("loadable_after", True) if last_repair else True
        return (True, "ready") if scan_ok else (False, "store would not load; see `guardian check`")
