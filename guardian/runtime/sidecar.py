"""The sidecar (`guardian run`): guard the store while contextd (or guardian's own search) runs.

In order: take the sidecar lock for this store, pre-flight and repair, start the snapshot
schedule, build the index, start the watcher, the HTTP endpoint and the control socket, then
supervise CMD (or, with no CMD, serve searches until a signal). Every part is a small step that
can be replaced; everything started is stopped in reverse order, whatever happens.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from guardian.runtime import alerts, sd_notify as notify
from guardian.local.catalog import Catalog
from guardian.errors import GuardianError, LockError
from guardian.format import chromem
from guardian.local.fsutil import ensure_dir
from guardian.logs import get_logger
from guardian.runtime.preflight import preflight_and_alert
from guardian.runtime.status import HEARTBEAT_SECONDS, StatusFile, iso_utc
from guardian.runtime.status_facts import collect_status


INDEX_CACHE_EVERY_BEATS = 12  # save the index cache about once a minute when it changed


@contextlib.contextmanager
def sidecar_lock(paths):
    """One sidecar per store: a non-blocking flock held for the sidecar's lifetime."""
    ensure_dir(paths.root)
    fd = os.open(paths.root / "sidecar.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockError(f"another guardian sidecar already guards {paths.store}",
                            "see `guardian status`; stop the other one first") from None
        yield
    finally:
        os.close(fd)


class Counters:
    """What the watcher did, for status and metrics."""

    def __init__(self) -> None:
        self.metadata_recreated = 0
        self.collections_removed: list[dict] = []
        self.repairs = 0
        self.snapshots_failed = 0

    def to_dict(self) -> dict:
        return {"metadata_recreated": self.metadata_recreated, "repairs": self.repairs,
                "snapshots_failed": self.snapshots_failed,
                "collections_removed": self.collections_removed[-20:]}


class Sidecar:
    def __init__(self, config, paths, cmd: list[str] | None = None, *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.paths = paths
        self.cmd = list(cmd or [])
        self.wall_clock = wall_clock
        self.log = get_logger("guardian.runtime.sidecar")
        self.alerter = alerts.Alerter.from_config(config)
        self.status_file = StatusFile(paths.status_file)
        self.counters = Counters()
        self.started_at = wall_clock()
        self.last_repair: dict | None = None
        self.last_scan = None
        self.repair_lock = threading.Lock()
        self.stop_requested = threading.Event()
        self.signals: queue.SimpleQueue = queue.SimpleQueue()
        self.supervisor = None
        self.scheduler = None
        self.index = None
        self.metrics = None
        self.http = None
        self.watcher = None
        self.control = None
        self.heartbeat_thread: threading.Thread | None = None
        self.cleanups: list[Callable[[], Any]] = []

    # ---- the whole run -------------------------------------------------------------------

    def run(self) -> int:
        self.paths.ensure()
        with sidecar_lock(self.paths):
            try:
                return self.run_locked()
            finally:
                self.shut_down()

    def run_locked(self) -> int:
        self.preflight()
        self.start_snapshots()
        self.start_index()
        self.start_watcher()
        self.start_http()
        self.start_control()
        self.start_heartbeat()
        if self.cmd:
            return self.supervise()
        notify.sd_notify("READY=1\nSTATUS=serving searches")
        return self.serve_until_signal()

    def shut_down(self) -> None:
        self.stop_requested.set()
        notify.sd_notify("STOPPING=1")
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:  # keep stopping the rest
                self.log.warning("shutdown_step_failed", step=getattr(cleanup, "__name__", "?"), error=str(exc))
        self.write_status(running=False)

    # ---- steps ---------------------------------------------------------------------------

    def preflight(self):
        with self.repair_lock:
            result = preflight_and_alert(self.config, self.paths, self.log, self.alerter)
        self.last_repair = {"time": iso_utc(self.wall_clock()), **summary_of(result)}
        self.last_scan = result.scan
        if result.actions:
            self.after_repair(result.actions)
        if self.metrics is not None:
            self.update_store_metrics(getattr(result, "scan", None))
        return result

    def after_repair(self, actions: list[dict]) -> None:
        """guardian's own writes do not go through the watcher: refresh and snapshot directly."""
        if self.watcher is not None:
            for action in actions:
                self.watcher.suppress(self.config.store_path / action["path"])
        self.counters.repairs += len(actions)
        if self.metrics is not None:
            self.metrics.inc_repairs(len(actions))
        if self.index is not None:
            threading.Thread(target=self.index.refresh_all, name="guardian-index-refresh", daemon=True).start()
        if self.scheduler is not None:
            self.scheduler.trigger_now()

    def start_snapshots(self) -> None:
        from guardian.snapshots.schedule import SnapshotScheduler

        self.scheduler = SnapshotScheduler(self.take_snapshot, self.config.snapshot_interval_minutes)
        self.scheduler.start()
        self.scheduler.trigger_now()
        self.cleanups.append(self.scheduler.shutdown)

    def take_snapshot(self):
        from guardian.snapshots.take import take_snapshot

        try:
            result = take_snapshot(self.paths, self.config.compress_flag)
        except GuardianError as exc:
            self.counters.snapshots_failed += 1
            self.log.error("snapshot_failed", error=exc.message)
            self.alerter.send(alerts.SNAPSHOT_FAILED, error=exc.message, hint=exc.hint)
            raise
        self.apply_retention()
        self.update_snapshot_metrics()
        return result

    def apply_retention(self) -> None:
        try:
            from guardian.snapshots.prune import forget_and_prune

            forget_and_prune(self.paths, self.config.keep_last, self.config.keep_hourly, self.config.keep_daily,
                             self.config.keep_weekly)
        except (GuardianError, OSError) as exc:
            self.log.warning("retention_failed", error=str(exc))

    def start_index(self) -> None:
        from guardian.index.store_index import StoreIndex
        from guardian.server.metrics import Metrics

        self.metrics = Metrics()
        compress = self.config.compress_flag
        if compress is None and self.last_scan is not None:
            compress = self.last_scan.compress  # the pre-flight already detected it: one rule, one walk
        self.index = StoreIndex(self.config.store_path, compress, cache_dir=self.paths.cache / "index",
                                known_names=Catalog(self.paths.catalog_file).names())
        thread = threading.Thread(target=self.build_index, name="guardian-index-build", daemon=True)
        thread.start()
        self.cleanups.append(self.save_index_cache)
        self.update_store_metrics(None)

    def save_index_cache(self) -> None:
        if self.index is not None and self.index.built:
            self.index.save_cache()

    def build_index(self) -> None:
        try:
            self.index.build()
            self.index.save_cache()
        except Exception as exc:  # the server keeps answering /healthz; /readyz says why
            self.log.error("index_build_failed", error=str(exc))

    def start_watcher(self) -> None:
        if not self.config.watch:
            return
        from guardian.runtime.watcher import StoreWatcher, WatchHandlers

        handlers = WatchHandlers(
            on_collection_created=self.on_collection_created,
            on_metadata_lost=self.on_metadata_lost,
            on_metadata_changed=self.on_metadata_changed,
            on_collection_removed=self.on_collection_removed,
            on_documents_changed=self.on_documents_changed,
            on_stray=self.on_stray,
        )
        self.watcher = StoreWatcher(self.config.store_path, handlers, debounce=self.config.debounce_seconds)
        self.watcher.start()
        self.cleanups.append(self.watcher.stop)

    def start_http(self) -> None:
        from guardian.server.http import GuardianHTTPServer

        self.http = GuardianHTTPServer(self.index, self.status_dict, self.config, metrics=self.metrics,
                                       health_provider=self.health, ready_provider=self.ready)
        self.http.start()
        self.cleanups.append(self.http.stop)
        self.log.info("http_listening", host=self.config.http_host, port=self.http.port)

    def start_control(self) -> None:
        from guardian.runtime.control import ControlServer

        handlers = {"status": lambda **_: self.status_dict(), "restart": self.control_restart,
                    "restore": self.control_restore, "snapshot": self.control_snapshot}
        self.control = ControlServer(self.paths.control_socket, handlers)
        self.control.start()
        self.cleanups.append(self.control.stop)

    def start_heartbeat(self) -> None:
        self.write_status(running=True)
        self.heartbeat_thread = threading.Thread(target=self.heartbeat_loop, name="guardian-heartbeat", daemon=True)
        self.heartbeat_thread.start()

    def heartbeat_loop(self) -> None:
        beats = 0
        while not self.stop_requested.wait(HEARTBEAT_SECONDS):
            beats += 1
            self.write_status(running=True)
            if not self.cmd:
                notify.sd_notify("WATCHDOG=1")
            if beats % INDEX_CACHE_EVERY_BEATS == 0:
                try:
                    self.save_index_cache()
                except OSError as exc:
                    self.log.warning("index_cache_save_failed", error=str(exc))

    # ---- running ---------------------------------------------------------------------------

    def supervise(self) -> int:
        from guardian.runtime.supervisor.signals import install_signal_handlers
        from guardian.runtime.supervisor.supervisor import PreflightResult, Supervisor

        first_start = [True]

        def supervised_preflight():
            # The store was just checked by run_locked; every restart after that checks again.
            # The child starts even when the store stays unloadable: contextd decides (and alerts went out).
            if first_start[0]:
                first_start[0] = False
                return PreflightResult(ok=True, detail="checked at start-up")
            result = self.preflight()
            return PreflightResult(ok=True, repaired=bool(getattr(result, "actions", None)))

        self.supervisor = Supervisor(self.cmd, self.config, preflight=supervised_preflight, alerter=self.alerter,
                                     on_state_change=self.on_child_state)
        restore_handlers = install_signal_handlers(self.supervisor)
        self.cleanups.append(restore_handlers)
        return self.supervisor.run_forever()

    def serve_until_signal(self) -> int:
        previous = {s: signal.signal(s, lambda signum, _f: self.signals.put(signum))
                    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            while True:
                try:
                    signum = self.signals.get(timeout=1.0)
                except queue.Empty:
                    continue
                if signum == signal.SIGHUP:
                    self.log.info("sighup_refresh_index")
                    threading.Thread(target=self.index.refresh_all, daemon=True).start()
                    continue
                self.log.info("stopping", signal=signal.Signals(signum).name)
                return 0
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # ---- watcher handlers --------------------------------------------------------------------

    def on_collection_created(self, dir_name: str) -> None:
        self.remember_name(dir_name)
        if self.scheduler is not None:
            self.scheduler.trigger_now()
        self.index.refresh_collection(dir_name)

    def on_metadata_changed(self, dir_name: str) -> None:
        self.remember_name(dir_name)
        self.index.refresh_collection(dir_name)

    def on_metadata_lost(self, dir_name: str) -> None:
        self.log.warning("metadata_lost", collection_dir=dir_name)
        result = self.preflight()
        if dir_name not in {p.collection_dir for p in getattr(getattr(result, "scan", None), "problems", [])
                            if p.severity == "fatal"}:
            self.counters.metadata_recreated += 1
            self.log.warning("metadata_recreated", collection_dir=dir_name)
        self.index.refresh_collection(dir_name)

    def on_collection_removed(self, dir_name: str) -> None:
        self.log.info("collection_removed", collection_dir=dir_name, note="deleted by contextd; not resurrected")
        self.counters.collections_removed.append({"dir": dir_name, "time": self.wall_clock()})
        self.index.refresh_collection(dir_name)

    def on_documents_changed(self, dir_name: str, paths: list[Path]) -> None:
        self.index.refresh_paths(paths)  # absolute (the watcher's) or store-relative: the index resolves both

    def on_stray(self, path) -> None:
        self.log.warning("stray_folder", path=str(path),
                         hint="chromem would refuse to load it; the next pre-flight moves it to quarantine")
        self.alerter.send(alerts.CORRUPTION_FOUND, path=str(path), kind="stray_folder")

    def remember_name(self, dir_name: str) -> None:
        ext = chromem.extension(self.index.compress)
        try:
            record = chromem.read_collection(self.config.store_path / dir_name / (chromem.METADATA_STEM + ext))
        except GuardianError:
            return
        if record.name:
            Catalog(self.paths.catalog_file).add([record.name], "watcher")

    # ---- control socket ------------------------------------------------------------------------

    def control_restart(self, **_):
        if self.supervisor is None:
            from guardian.errors import SupervisorError

            raise SupervisorError("this sidecar supervises no child", "start it with `guardian run -- CMD`")
        self.supervisor.request_restart()
        return {"ok": True, "child": self.supervisor.snapshot()}

    def control_snapshot(self, **_):
        result = self.take_snapshot()
        return {"ok": True, "snapshot": result.to_dict() if hasattr(result, "to_dict") else str(result)}

    def control_restore(self, at: str | None = None, collection: str | None = None, **_):
        """Stop the child, restore, check, start it again (asked by `guardian restore`).

        ``at`` is an ISO 8601 instant already resolved by the CLI (None: the latest snapshot).
        """
        from datetime import datetime

        from guardian.snapshots.restore import restore_store

        when = datetime.fromisoformat(at) if at else None
        paused = self.supervisor.pause_child() if self.supervisor is not None else None
        try:
            result = restore_store(self.paths, when, collection, confirm=None)
        finally:
            if paused is not None:
                self.supervisor.resume_child()
        self.index.refresh_all()
        self.log.warning("restored", snapshot=result.snapshot_id, collection=collection,
                         child_restarted=paused is not None)
        return {"restore": result.to_dict(), "child_paused": paused is not None}

    # ---- status ----------------------------------------------------------------------------------

    def on_child_state(self, old: str, new: str, snapshot: dict) -> None:
        self.log.info("child_state", old=old, new=new)
        if self.metrics is not None:
            self.metrics.set_child(new, snapshot.get("restarts", 0))
        self.write_status(running=True)

    def sidecar_dict(self, running: bool) -> dict:
        child = None
        if self.supervisor is not None:
            snap = self.supervisor.snapshot()
            child = {**snap, "fatal": snap["state"] == "fatal", "cmd": self.cmd}
        return {
            "running": running, "pid": os.getpid(), "started_at": self.started_at,
            "updated_at": self.wall_clock(), "heartbeat_seconds": HEARTBEAT_SECONDS,
            "http": {"host": self.config.http_host, "port": getattr(self.http, "port", None)} if self.http else None,
            "child": child, "watcher": self.counters.to_dict(),
            "index": self.index.summary() if self.index is not None and self.index.built else None,
        }

    def status_file_data(self, running: bool = True) -> dict:
        return {"sidecar": self.sidecar_dict(running), "last_repair": self.last_repair}

    def write_status(self, running: bool) -> None:
        try:
            self.status_file.write(self.status_file_data(running))
        except OSError as exc:
            self.log.warning("status_write_failed", error=str(exc))

    def status_dict(self) -> dict:
        return collect_status(self.config, self.paths, status_file_data=self.status_file_data())

    def health(self) -> dict:
        child = self.supervisor.snapshot() if self.supervisor is not None else None
        fatal = bool(child and child["state"] == "fatal")
        return {"healthy": not fatal, "status": "fatal" if fatal else "ok", "child": child}

    def ready(self) -> tuple[bool, str]:
        if self.index is None or not self.index.built:
            return False, "index is being built"
        scan_ok = self.last_repair.get("loadable_after", True) if self.last_repair else True
        return (True, "ready") if scan_ok else (False, "store would not load; see `guardian check`")

    # ---- metrics -----------------------------------------------------------------------------------

    def update_store_metrics(self, scan) -> None:
        if self.metrics is None:
            return
        with contextlib.suppress(Exception):
            if scan is not None:
                self.metrics.set_store(scan)
            self.update_snapshot_metrics()

    def update_snapshot_metrics(self) -> None:
        if self.metrics is None:
            return
        with contextlib.suppress(Exception):
            from guardian.runtime.status_facts import list_snapshot_headers

            headers = list_snapshot_headers(self.paths)
            newest = max((h.time.timestamp() for h in headers), default=None)
            self.metrics.set_snapshots(len(headers), newest)


def summary_of(result) -> dict:
    """What the status file keeps of a pre-flight: a one-line summary and the verdicts."""
    from guardian.repair.preflight import summary_line

    data = result.to_dict()
    return {"summary": summary_line(result), "loadable_before": data.get("loadable_before"),
            "loadable_after": data.get("loadable_after"), "actions": len(data.get("actions", []))}
