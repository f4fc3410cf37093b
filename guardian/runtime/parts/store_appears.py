"""Waiting for the store: on a new machine contextd creates its store on first start, so the
sidecar starts the child first and watches for the folder to appear.

``WhenStoreAppears`` wraps the parts that need the store folder itself (the watcher). When the
store is there at start-up they start at once. Otherwise a thread looks for the folder about once
a second (its parent may not exist either, so there is nothing to watch yet) and, when it appears,
runs a pre-flight, starts the wrapped parts, re-reads the index and asks for a snapshot.
"""

from __future__ import annotations

import threading

from guardian.runtime.parts import BasePart

STORE_POLL_SECONDS = 1.0


class WhenStoreAppears(BasePart):
    name = "store_wait"

    def __init__(self, ctx, inner: list) -> None:
        super().__init__(ctx)
        self.inner = list(inner)
        self.name = "+".join(part.name for part in self.inner)  # it stands for what it wraps
        self.started: list = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.ctx.paths.store.is_dir():
            self.start_inner()
            return
        self.ctx.log.info("store_missing_waiting", store=str(self.ctx.paths.store),
                          note="contextd creates it on first start; guardian starts guarding it then")
        self.thread = threading.Thread(target=self.wait_for_store, name="guardian-store-wait", daemon=True)
        self.thread.start()

    def wait_for_store(self) -> None:
        while not self.stopping.wait(STORE_POLL_SECONDS):
            if self.ctx.paths.store.is_dir():
                self.on_store_appeared()
                return

    def on_store_appeared(self) -> None:
        ctx = self.ctx
        ctx.log.info("store_appeared", store=str(ctx.paths.store))
        try:
            ctx.repair()
        except Exception as exc:  # the child runs on; the next pre-flight (before a restart) tries again
            ctx.log.error("preflight_failed", error=str(exc))
        self.start_inner()
        ctx.refresh_index(background=True)
        ctx.request_snapshot()

    def start_inner(self) -> None:
        with self.lock:
            for part in self.inner:
                if self.stopping.is_set():
                    return
                part.start()
                self.started.append(part)

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
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
