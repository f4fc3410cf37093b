"""The pre-flight part: check and repair the store at start-up, and whenever another part asks.

It offers the ``repair`` service (the supervisor asks before every restart, the watcher when a
metadata file vanished) and announces ``repaired`` with the actions it applied, so the watcher
ignores guardian's own writes, the index re-reads and a snapshot is taken.

The start-up pre-flight's scan keeps its folder listings (``StoreScan.take_listings``): the index
part builds on them instead of listing the store a second time. The watcher is started before
this part (see ``runtime.assembly``), so a write landing after the listing is still heard of.
"""

from __future__ import annotations

from guardian.repair.preflight import summary_line
from guardian.runtime.context import REPAIR, REPAIRED
from guardian.runtime.metrics_feed import update_snapshot_metrics
from guardian.runtime.parts import BasePart
from guardian.runtime.preflight import preflight_and_alert
from guardian.runtime.status import iso_utc


class PreflightPart(BasePart):
    name = "preflight"

    def start(self) -> None:
        self.ctx.provide(REPAIR, self.run)
        self.run(keep_listings=True)

    def run(self, keep_listings: bool = False):
        ctx = self.ctx
        with ctx.repair_lock:
            # keep_held: a file a paused writer holds may be made loadable; the live repair part puts the
            # writer's update back when it closes the file (`guardian serve` has no pre-flight at all)
            result = preflight_and_alert(ctx.config, ctx.paths, ctx.log, ctx.alerter, keep_listings=keep_listings,
                                         keep_held=ctx.config.live_repair and ctx.config.watch)
        ctx.last_repair = {"time": iso_utc(ctx.wall_clock()), **summary_of(result)}
        if result.actions:
            ctx.counters.repairs += len(result.actions)
            ctx.metrics.inc_repairs(len(result.actions))
            ctx.emit(REPAIRED, actions=result.actions)
        ctx.publish_scan(result.scan)
        update_snapshot_metrics(ctx)
        return result


def summary_of(result) -> dict:
    """What the status file keeps of a pre-flight: a one-line summary and the verdicts."""
    data = result.to_dict()
    return {"summary": summary_line(result), "loadable_before": data.get("loadable_before"),
            "loadable_after": data.get("loadable_after"), "actions": len(data.get("actions", []))}
