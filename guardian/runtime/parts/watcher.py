"""The watcher part: the store watcher wired to the other parts (this module owns the adapter).

In the sidecar (``guard=True``) the watcher's actions also remember collection names, ask for a
snapshot when a collection appears, ask for a repair when a metadata file is lost and alert on
stray folders; in `guardian serve` they only keep the index fresh.
"""

from __future__ import annotations

from pathlib import Path

from guardian.errors import GuardianError
from guardian.format import chromem
from guardian.local.catalog import Catalog
from guardian.runtime import alerts
from guardian.runtime.context import LIVE_REPAIR, REPAIRED, STORE_CHANGED
from guardian.runtime.parts import BasePart
from guardian.runtime.watcher import StoreWatcher, WatchHandlers


class WatcherPart(BasePart):
    name = "watcher"

    def __init__(self, ctx, *, guard: bool = True) -> None:
        super().__init__(ctx)
        self.guard = guard
        self.watcher: StoreWatcher | None = None

    def start(self) -> None:
        ctx = self.ctx
        handlers = self.guarding_handlers() if self.guard else self.index_handlers()
        self.watcher = StoreWatcher(ctx.config.store_path, handlers, debounce=ctx.config.debounce_seconds,
                                    on_raw=lambda events: ctx.emit(STORE_CHANGED, events=events))
        ctx.on(REPAIRED, self.ignore_own_writes)
        # started before the pre-flight lists the store (runtime.assembly), its handlers held until
        # the parts they call (repair, index) are up: then what was heard meanwhile is handled
        self.watcher.start(hold=not ctx.started)
        ctx.when_started(self.watcher.release)

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def ignore_own_writes(self, actions: list[dict]) -> None:
        """guardian's own writes do not go through the watcher (the repair refreshes directly)."""
        for action in actions:
            self.watcher.suppress(self.ctx.config.store_path / action["path"])

    # ---- handlers ----------------------------------------------------------------------------

    def index_handlers(self) -> WatchHandlers:
        refresh = self.refresh_collection
        return WatchHandlers(on_collection_created=refresh, on_metadata_lost=refresh, on_metadata_changed=refresh,
                             on_collection_removed=refresh, on_documents_changed=self.on_documents_changed)

    def guarding_handlers(self) -> WatchHandlers:
        return WatchHandlers(on_collection_created=self.on_collection_created,
                             on_metadata_lost=self.on_metadata_lost,
                             on_metadata_changed=self.on_metadata_changed,
                             on_collection_removed=self.on_collection_removed,
                             on_documents_changed=self.on_documents_changed, on_stray=self.on_stray)

    def refresh_collection(self, dir_name: str) -> None:
        self.ctx.refresh_index(collection=dir_name)

    def on_documents_changed(self, dir_name: str, paths: list[Path]) -> None:
        self.ctx.refresh_index(paths=paths)

    def on_collection_created(self, dir_name: str) -> None:
        self.remember_name(dir_name)
        self.ctx.request_snapshot()
        self.refresh_collection(dir_name)

    def on_metadata_changed(self, dir_name: str) -> None:
        self.remember_name(dir_name)
        self.refresh_collection(dir_name)

    def on_metadata_lost(self, dir_name: str) -> None:
        ctx = self.ctx
        ctx.log.warning("metadata_lost", collection_dir=dir_name)
        if ctx.offers(LIVE_REPAIR):
            return  # the live repair part repairs it once settled (never a file a writer still writes)
        result = ctx.repair()
        still_fatal = {p.collection_dir for p in getattr(getattr(result, "scan", None), "problems", [])
                       if p.severity == "fatal"}
        if dir_name not in still_fatal:
            ctx.counters.metadata_recreated += 1
            ctx.log.warning("metadata_recreated", collection_dir=dir_name)
        self.refresh_collection(dir_name)

    def on_collection_removed(self, dir_name: str) -> None:
        ctx = self.ctx
        ctx.log.info("collection_removed", collection_dir=dir_name, note="deleted by contextd; not resurrected")
        ctx.counters.collections_removed.append({"dir": dir_name, "time": ctx.wall_clock()})
        self.refresh_collection(dir_name)

    def on_stray(self, path) -> None:
        self.ctx.log.warning("stray_folder", path=str(path),
                             hint="chromem would refuse to load it; the next pre-flight moves it to quarantine")
        self.ctx.alerter.send(alerts.CORRUPTION_FOUND, path=str(path), kind="stray_folder")

    def remember_name(self, dir_name: str) -> None:
        ctx = self.ctx
        ext = chromem.extension(ctx.index.compress)
        try:
            record = chromem.read_collection(ctx.config.store_path / dir_name / (chromem.METADATA_STEM + ext))
        except GuardianError:
            return
        if record.name:
            Catalog(ctx.paths.catalog_file).add([record.name], "watcher")
