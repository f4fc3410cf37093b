"""The facts behind `guardian status`: read from disk (the status file, a cached scan, the snapshot ids,
the quarantine, the replica state files), never from a remote."""

from __future__ import annotations

import time

from guardian.local.quarantine import Quarantine
from guardian.runtime.control import ControlServer
from guardian.runtime.status_facts import (collect_status, count_quarantined, list_snapshot_times, replica_facts,
                                          sidecar_status)
from guardian.snapshots.restore import id_time
from guardian.snapshots.take import take_snapshot
from tests.runtime.parts.part_helpers import first_document


def test_snapshot_times_come_from_the_ids_and_the_quarantine_is_counted(parts):
    ctx = parts.make()
    assert list_snapshot_times(ctx.paths) == [] and count_quarantined(ctx.paths) == 0
    result = take_snapshot(ctx.paths)
    assert list_snapshot_times(ctx.paths) == [id_time(result.id)]
    victim = first_document(parts.store)
    Quarantine(ctx.paths).put(parts.store, f"40917930/{victim.name}", "damaged (a test)")
    assert count_quarantined(ctx.paths) == 1 and not victim.exists()


def test_replica_facts_read_only_the_local_state(parts, tmp_path):
    ctx = parts.make()
    assert replica_facts(ctx.config, ctx.paths, time.time()) == ([], False)
    config = ctx.config.replace(replicas=(f"file://{tmp_path}/never-created",))
    facts, unexported = replica_facts(config, ctx.paths, time.time())
    assert len(facts) == 1 and facts[0]["configured"] and not facts[0]["pushed"] and unexported is False
    assert not (tmp_path / "never-created").exists()       # nothing was pushed or even looked at remotely


def test_collect_status_on_a_healthy_store_without_a_sidecar(parts):
    ctx = parts.make()
    take_snapshot(ctx.paths)
    status = collect_status(ctx.config, ctx.paths)
    assert status["store"]["loadable"] is True and status["snapshots"]["count"] == 1
    assert status["sidecar"]["running"] is False


def test_status_asks_a_running_sidecar_and_falls_back_to_the_disk(parts):
    """The sidecar's answer over its control socket is used as it is (its live scan); no socket, a
    sidecar that fails or answers something that is not a status: None, and the caller reads the disk."""
    ctx = parts.make()
    assert sidecar_status(ctx.paths) is None            # no socket at all
    answer = {"exit_code": 0, "health": "ok", "store": {"documents": 7}}
    with ControlServer(ctx.paths.control_socket, {"status": lambda **_: answer}):
        assert sidecar_status(ctx.paths) == answer
    with ControlServer(ctx.paths.control_socket, {"status": lambda **_: 1 / 0}):
        assert sidecar_status(ctx.paths) is None        # its error answer: read the disk instead
    with ControlServer(ctx.paths.control_socket, {"status": lambda **_: ["not", "a", "status"]}):
        assert sidecar_status(ctx.paths) is None
