"""Waiting for the store: on a new machine contextd creates its store on first start, so the
sidecar starts the child first and watches for the folder to appear.

``WhenStoreAppears`` wraps the parts that need the store folder itself (the watcher). When the
store is there at start-up they start at once. Otherwise a thread looks for the folder about once
a second (its parent may not exist either, so there is nothing to watch yet) and, when it appears,
starts the wrapped parts, then runs a pre-flight, re-reads the index and asks for a snapshot (the
watcher first: a write contextd makes while the pre-flight and the index read the store is heard).

Until then the sidecar guards nothing, which may well be a wrong --store (a relative path, a
typo): it says so at warning level when it starts and every hour after, and `status` shows it.
"""

from __future__ import annotations

import threading
import time

from guardian.runtime.parts import ThreadedPart

STORE_POLL_SECONDS = 1.0
STORE_MISSING_REPEAT_SECONDS = 3600.0   # the warning again, while the sidecar still guards nothing


class WhenStoreAppears(ThreadedPart):
    name = "store_wait"
    thread_name = "guardian-store-wait"

    def __init__(self, ctx, inner: list, repeat_seconds: float = STORE_MISSING_REPEAT_SECONDS) -> None:
        super().__init__(ctx)
        self.inner = list(inner)
        self.repeat_seconds = repeat_seconds
        self.name = "+".join(part.name for part in self.inner)  # it stands for what it wraps
        self.started: list = []
        self.lock = threading.Lock()

    def start(self) -> None:
        if self.ctx.paths.store.is_dir():
            self.start_inner()
            return
        self.warn_store_missing(0.0)
        self.start_thread()

    def warn_store_missing(self, waited: float) -> None:
        self.ctx.log.warning("store_missing_waiting", store=str(self.ctx.paths.store), waited_seconds=round(waited),
                             note="guarding nothing until this folder exists: contextd creates it on first "
                                  "start; if contextd uses another folder, pass that one as --store")

    def loop(self) -> None:
        """Look for the store about once a second until it is there (or guardian stops); repeat
        the warning every hour meanwhile."""
        began = warned = time.monotonic()
        while not self.wait_stopped(STORE_POLL_SECONDS):
            if self.ctx.paths.store.is_dir():
                self.on_store_appeared()
                return
            if time.monotonic() - warned >= self.repeat_seconds:
                warned = time.monotonic()
                self.warn_store_missing(warned - began)

    def on_store_appeared(self) -> None:
        ctx = self.ctx
        ctx.log.info("store_appeared", store=str(ctx.paths.store))
        self.start_inner()
        try:
            ctx.repair()
        except Exception as exc:  # the child runs on; the next pre-flight (before a restart) tries again
            ctx.log.error("preflight_failed", error=str(exc))
        ctx.refresh_index(background=True)
        ctx.request_snapshot()

    def start_inner(self) -> None:
        with self.lock:
            for part in self.inner:
                if self.stopping:
                    return
                part.start()
                self.started.append(part)

    def stop(self) -> None:
        self.stop_thread()
        with self.lock:
            for part in reversed(self.started):
                part.stop()
            self.started = []

    def status(self) -> dict:
        data = {"store_present": self.ctx.paths.store.is_dir()}
        for part in self.inner:
            data.update(part.status())
        return data

    def health(self) -> dict:
        data: dict = {}
        for part in self.inner:
            data.update(part.health())
        return data
