"""The pre-flight part: check and repair at start, on request (the repair service), and say so."""

from __future__ import annotations

from guardian.runtime.context import REPAIR, REPAIRED
from guardian.runtime.parts.preflight import PreflightPart
from guardian.snapshots.take import take_snapshot
from tests.runtime.parts.part_helpers import first_document


def test_start_repairs_a_damaged_store_and_announces_what_it_did(parts):
    ctx = parts.make()
    take_snapshot(ctx.paths)
    victim = first_document(parts.store)
    good = victim.read_bytes()
    victim.write_bytes(b"")
    parts.listen(ctx, REPAIRED)
    part = PreflightPart(ctx)
    part.start()
    assert victim.read_bytes() == good
    [event] = parts.events(REPAIRED)
    assert [a["path"] for a in event["actions"] if a.get("path")] == [f"40917930/{victim.name}"]
    assert ctx.last_scan.loadable and ctx.last_repair["loadable_before"] is False
    assert ctx.last_repair["loadable_after"] is True and ctx.last_repair["actions"] == 1
    assert ctx.counters.repairs == 1 and "guardian_store_loadable 1.0" in ctx.metrics.render().decode()
    assert "repair_done" in parts.alerts()


def test_the_repair_service_checks_again_and_a_healthy_store_changes_nothing(parts):
    ctx = parts.make()
    parts.listen(ctx, REPAIRED)
    part = PreflightPart(ctx)
    part.start()
    assert ctx.offers(REPAIR)
    result = ctx.repair()
    assert result.scan.loadable and result.actions == [] and parts.events(REPAIRED) == []
    assert ctx.last_repair["actions"] == 0 and ctx.counters.repairs == 0
