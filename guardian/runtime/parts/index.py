"""The index part: guardian's own search index of the store, kept fresh and cached.

Built in the background in the sidecar (the HTTP API answers /healthz meanwhile, /readyz says
why it is not ready) or before anything else in `guardian serve`. Every minute the collections
with enough changes go to the cache (``StoreIndex.save_cache(force=False)``), all of them on stop;
without a watcher the whole store is re-read every few seconds.

The first build in `guardian run` lists nothing: it takes the folder listings of the start-up
pre-flight's scan (``StoreScan.take_listings``; one walk of the store for both). What changed
since that listing reaches the index through the watcher, which runs from before it: a refresh
asked for while the first build runs waits for it, then applies on top of it.
"""

from __future__ import annotations

import threading

from guardian.errors import GuardianError
from guardian.index.store_index import StoreIndex
from guardian.local.catalog import Catalog
from guardian.local.memory import release_free_memory
from guardian.runtime.context import INDEX_STALE, REPAIRED
from guardian.runtime.parts import ThreadedPart

CACHE_SAVE_SECONDS = 60.0
POLL_SECONDS = 2.0  # how often the index re-reads the store when nothing watches it
STOP_WAIT_SECONDS = 60.0  # how long a stop waits for the first build and its cache write


def open_index(config, paths, compress: bool | None = None) -> StoreIndex:
    """The store's index (not built yet), with its cache in the state dir and the known names."""
    if compress is None:
        compress = config.compress_flag
    return StoreIndex(config.store_path, compress, cache_dir=paths.cache / "index",
                      known_names=Catalog(paths.catalog_file).names())


class IndexPart(ThreadedPart):
    """Its worker thread is the upkeep (:meth:`loop`); a build or refresh in the background runs on a
    thread of its own."""

    name = "index"
    thread_name = "guardian-index-upkeep"

    def __init__(self, ctx, *, background: bool = True, poll: bool = False) -> None:
        super().__init__(ctx)
        self.background = background
        self.poll = poll
        self.index: StoreIndex | None = None
        self.first_build = threading.Event()   # set once the first build returned (built or not)
        self.start_listings = None             # the pre-flight's listings, until the first build took them

    def start(self) -> None:
        ctx = self.ctx
        compress = ctx.config.compress_flag
        scan = ctx.last_scan
        self.start_listings = scan.take_listings() if scan is not None else None  # if the pre-flight kept them
        if compress is None and scan is not None:
            compress = scan.compress  # the pre-flight already detected it: one rule, one walk
        self.index = ctx.index = open_index(ctx.config, ctx.paths, compress)
        ctx.on(INDEX_STALE, self.refresh)
        ctx.on(REPAIRED, lambda actions: self.refresh(background=True))
        if self.background:
            threading.Thread(target=self.build, name="guardian-index-build", daemon=True).start()
        else:
            try:
                self.index.build(self.take_start_listings())
                self.index.save_cache()
                release_free_memory()
            finally:
                self.first_build.set()
        self.start_thread()

    def stop(self) -> None:
        self.stop_thread()
        # a stop right after the first build must not cut its cache write short: that write took the
        # dirty collections, so the save below would find nothing to write and the process would exit
        # under it (temp files left, no manifest: the next start would be cold again)
        if not self.first_build.wait(STOP_WAIT_SECONDS):
            self.ctx.log.warning("index_cache_save_unfinished", seconds=STOP_WAIT_SECONDS)
        self.save_cache()

    def status(self) -> dict:
        index = self.index
        return {"index": index.summary() if index is not None and index.built else None}

    def take_start_listings(self):
        """The pre-flight's listings, once (100k names and stats are not kept past the first build)."""
        listings, self.start_listings = self.start_listings, None
        return listings

    def build(self) -> None:
        try:
            listings = self.take_start_listings()
            if not self.ctx.paths.store.exists():  # no store yet: built when it appears (refresh)
                return
            self.index.build(listings)
            del listings
            self.index.save_cache()  # from here the index is served from the mapped cache files
        except Exception as exc:  # the server keeps answering /healthz; /readyz says why
            self.ctx.log.error("index_build_failed", error=str(exc))
        finally:
            release_free_memory()  # what the build decoded and freed leaves the sidecar's private memory
            self.first_build.set()

    def save_cache(self, force: bool = True) -> None:
        if self.index is not None and self.index.built and self.index.save_cache(force):
            release_free_memory()  # the rows folded into the new cache file were in memory until now

    def refresh(self, collection: str | None = None, paths: list | None = None, background: bool = False) -> None:
        if background:
            threading.Thread(target=self.refresh, args=(collection, paths), name="guardian-index-refresh",
                             daemon=True).start()
            return
        self.first_build.wait()   # a change heard during the first build applies on top of it
        if not self.index.built:
            self.build()  # the first build (the store appeared after start-up, or the build failed)
        elif paths is not None:
            self.index.refresh_paths(paths)  # absolute (the watcher's) or store-relative: both resolve
        elif collection is not None:
            self.index.refresh_collection(collection)
        else:
            self.index.refresh_all()

    def loop(self) -> None:
        """Upkeep: the changed collections to the cache every minute; without a watcher, poll the store."""
        wait = POLL_SECONDS if self.poll else CACHE_SAVE_SECONDS
        waited = 0.0
        while not self.wait_stopped(wait):
            waited += wait
            if self.poll and self.index.built:
                self.poll_store()
            if waited >= CACHE_SAVE_SECONDS:
                waited = 0.0
                try:
                    self.save_cache(force=False)  # every change is written at the latest on stop
                except OSError as exc:
                    self.ctx.log.warning("index_cache_save_failed", error=str(exc))

    def poll_store(self) -> None:
        try:
            self.index.refresh_all()
        except (GuardianError, OSError) as exc:  # the next poll tries again
            self.ctx.log.warning("index_refresh_failed", error=str(exc))
