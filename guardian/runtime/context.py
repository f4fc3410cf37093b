"""What the runtime's parts share: a small, explicit context instead of one object's attributes.

A part never reaches into another part. It reads the shared facts here (config, paths, logger,
alert sink, metrics, counters, the last repair), *offers* what only it can do with
:meth:`RuntimeContext.provide` (the pre-flight offers ``repair``, the snapshot part ``snapshot``),
*announces* what happened with :meth:`RuntimeContext.emit` (``repaired``, ``child_state``) and
*listens* with :meth:`RuntimeContext.on`. The helpers ``repair()``, ``take_snapshot()``,
``request_snapshot()`` and ``refresh_index()`` are the requests parts make of each other; each
is a no-op (or ``None``) when the part that answers it is not in this assembly.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any, Callable

from guardian.logs import get_logger
from guardian.runtime import alerts
from guardian.server.metrics import Metrics

# ---- events (emit/on): what happened --------------------------------------------------------
REPAIRED = "repaired"                 # actions: list[dict] -- guardian itself wrote to the store
SNAPSHOT_WANTED = "snapshot_wanted"   # (no fields) -- take a snapshot soon
INDEX_STALE = "index_stale"           # collection: str | None, paths: list | None, background: bool
CHILD_STATE = "child_state"           # old: str, new: str, snapshot: dict
SNAPSHOT_TAKEN = "snapshot_taken"     # (no fields) -- a snapshot was committed (and retention ran)
STORE_CHANGED = "store_changed"       # events: list[watcher.RawEvent] -- raw, on the observer thread: be quick
DAMAGE_FOUND = "damage_found"         # damages: list[judge.Damage] -- settled paths chromem would refuse
STORE_SCANNED = "store_scanned"       # scan: StoreScan -- the shared verdict was renewed (ctx.publish_scan)
STARTED = "started"                   # (no fields) -- every part started (ctx.started is True from then on)

# ---- services (provide/ask): what exactly one part can do -------------------------------------
REPAIR = "repair"        # () -> the pre-flight result (check + repair, under the repair lock)
SNAPSHOT = "snapshot"    # () -> the snapshot result (taken now, in this thread)
VERDICT = "verdict"      # () -> dict: chromem's verdict on the store as it is now (health part)
LIVE_REPAIR = "live_repair"  # (damages) -> repairs settled damage (live repair part; its presence matters)
RESTORE = "restore"      # (**RestoreRequest wire) -> {"restore": outcome dict, ...} (control part)
UNDO_RESTORE = "undo_restore"  # (restore_id, force) -> the undo's dict (control part)
MCP_READY = "mcp_ready"      # (store, **caller) -> {"ready": True, "answered": n}: it answers `guardian mcp` sessions
MCP_FALLBACK = "mcp_fallback"  # (store, **caller) -> serve(rfile, wfile): a session's fallback server, here


class Counters:
    """What the watcher and the repairs did, for status and metrics."""

    def __init__(self) -> None:
        self.metadata_recreated = 0
        self.collections_removed: list[dict] = []
        self.repairs = 0
        self.snapshots_failed = 0

    def to_dict(self) -> dict:
        return {"metadata_recreated": self.metadata_recreated, "repairs": self.repairs,
                "snapshots_failed": self.snapshots_failed,
                "collections_removed": self.collections_removed[-20:]}


class RuntimeContext:
    """The shared state of one runtime (one `guardian run` or `guardian serve` process)."""

    def __init__(self, config, paths, cmd: list[str] | None = None, *,
                 wall_clock: Callable[[], float] = time.time,
                 alerter: alerts.Alerter | None = None) -> None:
        self.config = config
        self.paths = paths
        self.cmd = list(cmd or [])
        self.wall_clock = wall_clock
        self.started_at = wall_clock()
        self.log = get_logger("guardian.runtime")
        self.alerter = alerter or alerts.Alerter.from_config(config)
        self.metrics = Metrics()
        self.counters = Counters()
        self.repair_lock = threading.Lock()
        self.last_repair: dict | None = None  # the status file's summary of the last pre-flight
        self.last_scan = None                  # the newest verdict on the store (see publish_scan)
        self.index = None                      # the StoreIndex, once the index part started
        self.child = None                      # the Supervisor, once the supervisor part started
        self.started = False                   # every part started (see mark_started)
        self._listeners: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        self._services: dict[str, Callable[..., Any]] = {}

    # ---- events ---------------------------------------------------------------------------

    def on(self, event: str, listener: Callable[..., Any]) -> None:
        self._listeners[event].append(listener)

    def emit(self, event: str, **fields: Any) -> None:
        """Call every listener of ``event``; one that raises is logged and the others still run."""
        for listener in list(self._listeners[event]):
            try:
                listener(**fields)
            except Exception as exc:
                self.log.error("runtime_listener_failed", runtime_event=event,
                               error=f"{type(exc).__name__}: {exc}")

    # ---- services -------------------------------------------------------------------------

    def provide(self, service: str, answer: Callable[..., Any]) -> None:
        self._services[service] = answer

    def offers(self, service: str) -> bool:
        return service in self._services

    def ask(self, service: str, *args: Any, **kwargs: Any) -> Any:
        """The answer of the part offering ``service``; None when no part offers it."""
        answer = self._services.get(service)
        return None if answer is None else answer(*args, **kwargs)

    def publish_scan(self, scan) -> None:
        """The one shared verdict on the store: every part that scanned (the pre-flight, the health part,
        a repair) hands its scan here; /readyz, the metrics and /v1/status all follow it, so nobody
        scans the store again just to show it."""
        if scan is None:
            return
        from guardian.runtime.metrics_feed import update_store_metrics

        self.last_scan = scan
        update_store_metrics(self, scan)
        self.emit(STORE_SCANNED, scan=scan)

    def mark_started(self) -> None:
        """Every part started: announce it once (work a part held back until then may begin)."""
        self.started = True
        self.emit(STARTED)

    def when_started(self, action: Callable[[], Any]) -> None:
        """Run ``action`` once every part started: now if they have, else on ``started``. (A part
        started late, when the store appears, runs it at once; it may run twice if that races with
        the announcement, so it must be harmless to repeat.)"""
        self.on(STARTED, action)
        if self.started:
            action()

    # ---- the requests parts make of each other ----------------------------------------------

    def repair(self):
        """Check and repair the store now (None when this runtime has no pre-flight part)."""
        return self.ask(REPAIR)

    def take_snapshot(self):
        return self.ask(SNAPSHOT)

    def request_snapshot(self) -> None:
        self.emit(SNAPSHOT_WANTED)

    def refresh_index(self, collection: str | None = None, paths: list | None = None,
                      background: bool = False) -> None:
        """Re-read one collection, some files, or (neither given) the whole store into the index."""
        self.emit(INDEX_STALE, collection=collection, paths=paths, background=background)
