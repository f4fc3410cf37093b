"""WhenStoreAppears: parts that need the store folder start once it exists (contextd makes it on
first start); a pre-flight, an index refresh and a snapshot request follow."""

from __future__ import annotations

import json
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


def test_a_missing_store_is_a_warning_at_start_and_again_while_it_stays_missing(parts, caplog):
    """A sidecar guarding a path with no store guards nothing (a wrong --store looks just like a new
    machine): a warning when it starts, then again every ``repeat_seconds`` (an hour) meanwhile."""
    shutil.rmtree(parts.store)
    ctx = parts.make()
    part = WhenStoreAppears(ctx, [Inner(ctx, "watcher", [])], repeat_seconds=0.2)
    part.start()

    def warnings() -> list[dict]:
        found = [json.loads(line[line.index("{"):]) for line in caplog.text.splitlines()
                 if "store_missing_waiting" in line]
        return found if len(found) >= 3 else []

    try:
        found = wait_for(warnings, what="the warning at start and two repeats")
    finally:
        part.stop()
    assert {w["level"] for w in found} == {"warning"} and {w["store"] for w in found} == {str(parts.store)}
    assert found[0]["waited_seconds"] == 0 and "--store" in found[0]["note"]
