"""/v1/status from facts the runtime keeps current, instead of a store rescan on every call.

`guardian status` gathers its facts from disk (:func:`~guardian.runtime.status_facts.collect_status`:
scan the store, list the snapshots, list the quarantine). Done per HTTP call that cost
2.2 s at 20k documents and 25.8 s for 8 calls at once. :class:`LiveStatus` keeps those three
facts and re-reads one only when the runtime says it changed (the index was told files changed,
a repair ran, a snapshot was taken), in one background thread, a second after the last change;
a fact nobody changed is re-read at most every :data:`MAX_AGE_SECONDS` and only if someone asked
for the status meanwhile (a change outside the watcher's view). A call builds the status from
what is kept: no I/O but the caller's own ``status_file_data``.

The scan is not read here when a part keeps the shared verdict current (the health part offers
``verdict`` and publishes every scan, ``store_scanned``): then the status shows that scan, the same
one /readyz and the metrics show, and costs no walk of the store at all.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from guardian.errors import GuardianError
from guardian.runtime.context import INDEX_STALE, REPAIRED, SNAPSHOT_TAKEN, STORE_SCANNED, VERDICT
from guardian.runtime.status import build_status
from guardian.runtime.status_facts import count_quarantined, list_snapshot_times
from guardian.store.scan import scan_store

DEBOUNCE_SECONDS = 1.0  # a burst of changes costs one re-read
MAX_AGE_SECONDS = 60.0
FACTS = ("scan", "snapshots", "quarantined")


class LiveStatus:
    """The status dict from kept facts; ``start()`` subscribes and starts the refresher, ``stop()`` ends it."""

    def __init__(self, ctx, status_file_data: Callable[[], dict | None], *,
                 debounce: float = DEBOUNCE_SECONDS, max_age: float = MAX_AGE_SECONDS) -> None:
        self.ctx = ctx
        self.status_file_data = status_file_data
        self.debounce = debounce
        self.max_age = max_age
        self._lock = threading.Lock()
        self._facts: dict = {"scan": ctx.last_scan, "snapshots": None, "quarantined": None}
        self._read_at = dict.fromkeys(FACTS, 0.0)
        self._dirty = {name for name in FACTS if self._facts[name] is None}
        self._asked = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.reads = dict.fromkeys(FACTS, 0)  # how often each fact was read from disk (tests, debugging)
        self.shared_scan = False  # True once start() finds a part publishing the store's scans

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> "LiveStatus":
        ctx = self.ctx
        self.shared_scan = ctx.offers(VERDICT)
        ctx.on(STORE_SCANNED, self.take_scan)
        if self.shared_scan:
            with self._lock:
                self._dirty.discard("scan")
            ctx.on(REPAIRED, lambda **_: self.mark("quarantined"))
        else:
            ctx.on(INDEX_STALE, lambda **_: self.mark("scan"))
            ctx.on(REPAIRED, lambda **_: self.mark("scan", "quarantined"))
        ctx.on(SNAPSHOT_TAKEN, lambda **_: self.mark("snapshots"))
        self.refresh()  # the first facts before the first call (cheap when the pre-flight's scan is there)
        self._thread = threading.Thread(target=self._run, name="guardian-live-status", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    # ---- facts ----------------------------------------------------------------------------

    def take_scan(self, scan) -> None:
        """A part published a new scan of the store: show it (no read here)."""
        with self._lock:
            self._facts["scan"] = scan
            self._read_at["scan"] = time.monotonic()
            self._dirty.discard("scan")

    def mark(self, *names: str) -> None:
        """These facts changed on disk: re-read them soon (in the refresher, not in the caller)."""
        with self._lock:
            self._dirty.update(names)
        self._wake.set()

    def __call__(self) -> dict:
        with self._lock:
            facts = dict(self._facts)
            self._asked = True
        ctx = self.ctx
        return build_status(ctx.paths, ctx.config, ctx.wall_clock(), facts["scan"], facts["snapshots"] or [],
                            facts["quarantined"], self.status_file_data())

    def refresh(self) -> None:
        """Re-read every dirty fact, and any older than max_age that a caller may be waiting on."""
        now = time.monotonic()
        with self._lock:
            stale = {name for name in FACTS if self._asked and now - self._read_at[name] > self.max_age
                     and not (name == "scan" and self.shared_scan)}
            wanted = self._dirty | stale
            self._dirty = set()
            self._asked = False
        for name in FACTS:
            if name in wanted:
                value = self._read(name)
                with self._lock:
                    self._facts[name] = value
                    self._read_at[name] = time.monotonic()
                    self.reads[name] += 1

    def _read(self, name: str):
        ctx = self.ctx
        if name == "scan":
            try:
                return scan_store(ctx.config.store_path, ctx.config.compress_flag, cache_dir=ctx.paths.cache)
            except GuardianError:
                return None
        if name == "snapshots":
            try:
                return list_snapshot_times(ctx.paths)
            except (GuardianError, OSError):
                return []
        return count_quarantined(ctx.paths)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=self.max_age)
            if self._stopping.is_set():
                return
            self._wake.clear()
            if self._stopping.wait(self.debounce):  # let a burst of changes settle
                return
            try:
                self.refresh()
            except Exception as exc:  # a status view: log, keep the old facts, try again later
                self.ctx.log.warning("status_refresh_failed", error=f"{type(exc).__name__}: {exc}")
