"""The runtime context: events reach every listener, services answer or are absent."""

from __future__ import annotations

from guardian.config import Config
from guardian.local.paths import StatePaths
from guardian.runtime.context import REPAIR, REPAIRED, SNAPSHOT_WANTED, RuntimeContext


def make_context(tmp_path) -> RuntimeContext:
    config = Config(store=str(tmp_path / "store"))
    return RuntimeContext(config, StatePaths.for_store(config.store_path, str(tmp_path / "state")))


def test_a_listener_that_raises_does_not_stop_the_others(tmp_path):
    ctx = make_context(tmp_path)
    heard = []
    ctx.on(REPAIRED, lambda actions: heard.append(("first", actions)))
    ctx.on(REPAIRED, lambda actions: 1 / 0)
    ctx.on(REPAIRED, lambda actions: heard.append(("third", actions)))
    ctx.emit(REPAIRED, actions=[{"path": "x"}])
    assert heard == [("first", [{"path": "x"}]), ("third", [{"path": "x"}])]


def test_requests_without_the_part_that_answers_them_are_no_ops(tmp_path):
    ctx = make_context(tmp_path)
    assert ctx.repair() is None and ctx.take_snapshot() is None
    assert not ctx.offers(REPAIR)
    ctx.request_snapshot()  # nobody listens: nothing happens
    ctx.refresh_index(collection="40917930")


def test_a_provided_service_answers_and_events_carry_their_fields(tmp_path):
    ctx = make_context(tmp_path)
    ctx.provide(REPAIR, lambda: "repaired")
    wanted = []
    ctx.on(SNAPSHOT_WANTED, lambda: wanted.append(True))
    assert ctx.offers(REPAIR) and ctx.repair() == "repaired"
    ctx.request_snapshot()
    assert wanted == [True]
