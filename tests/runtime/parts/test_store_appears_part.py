"""WhenStoreAppears: parts that need the store folder start once it exists (contextd makes it on
first start); a pre-flight, an index refresh and a snapshot request follow."""

from __future__ import annotations

import shutil

from guardian.runtime.context import INDEX_STALE, REPAIR, SNAPSHOT_WANTED
from guardian.runtime.parts import BasePart
from guardian.runtime.parts.store_appears import WhenStoreAppears
from tests.waiting import wait_for


class Inner(BasePart):
    def __init__(self, ctx, name: str, log: list) -> None:
        super().__init__(ctx)
        self.name, self.log = name, log

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")

    def status(self) -> dict:
        return {self.name: "here"}


def test_a_present_store_starts_the_inner_parts_at_once_without_a_thread(parts):
    ctx = parts.make()
    log: list = []
    part = WhenStoreAppears(ctx, [Inner(ctx, "watcher", log), Inner(ctx, "other", log)])
    part.start()
    assert part.name == "watcher+other" and part.thread is None
    assert log == ["start watcher", "start other"]
    assert part.status() == {"store_present": True, "watcher": "here", "other": "here"}
    part.stop()
    assert log[2:] == ["stop other", "stop watcher"]


def test_a_missing_store_is_waited_for_then_checked_guarded_indexed_and_snapshotted(parts):
    shutil.rmtree(parts.store)
    ctx = parts.make()
    log: list = []
    ctx.provide(REPAIR, lambda: log.append("preflight"))
    parts.listen(ctx, INDEX_STALE)
    parts.listen(ctx, SNAPSHOT_WANTED)
    part = WhenStoreAppears(ctx, [Inner(ctx, "watcher", log)])
    part.start()
    try:
        assert log == [] and part.thread.is_alive() and part.status()["store_present"] is False
        parts.store.mkdir()                                # contextd's first start
        wait_for(lambda: parts.events(SNAPSHOT_WANTED), what="the snapshot request")
        # the watcher first: what contextd writes while the pre-flight and the index read is heard
        assert log == ["start watcher", "preflight"] and parts.events(INDEX_STALE)[0]["background"] is True
        part.thread.join(30)
        assert not part.thread.is_alive()                  # its job is done
    finally:
        part.stop()
    assert log == ["start watcher", "preflight", "stop watcher"]


def test_a_stop_while_waiting_starts_nothing(parts):
    shutil.rmtree(parts.store)
    ctx = parts.make()
    log: list = []
    part = WhenStoreAppears(ctx, [Inner(ctx, "watcher", log)])
    part.start()
    part.stop()
    assert not part.thread.is_alive() and log == []
    parts.store.mkdir()
    assert log == []
