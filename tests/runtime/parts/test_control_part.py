"""The control part: the socket `guardian status/restart/snapshot/exec` talk to, over a real Unix socket."""

from __future__ import annotations

import pytest

from guardian.errors import SupervisorError
from guardian.runtime.context import REPAIR, SNAPSHOT, VERDICT
from guardian.runtime.control import SidecarUnavailable, control_request
from guardian.runtime.parts.control import ControlPart
from tests.runtime.parts.part_helpers import first_document


def test_each_command_reaches_the_part_that_answers_it(parts):
    ctx = parts.make()
    part = ControlPart(ctx, status=lambda: {"sidecar": {"running": True}})
    part.start()
    sock = ctx.paths.control_socket
    try:
        assert control_request(sock, "status") == {"sidecar": {"running": True}}
        assert control_request(sock, "verdict") == {"loadable": None}        # no health part here
        ctx.provide(VERDICT, lambda: {"loadable": True, "damaged": []})
        assert control_request(sock, "verdict") == {"loadable": True, "damaged": []}
        ctx.provide(SNAPSHOT, lambda: "taken")
        assert control_request(sock, "snapshot") == {"ok": True, "snapshot": "taken"}
        ctx.provide(REPAIR, lambda: None)
        assert control_request(sock, "repair") == {"loadable": None, "actions": 0}
        with pytest.raises(SupervisorError) as exc:                           # no child in this runtime
            control_request(sock, "restart")
        assert "supervises no child" in exc.value.message
    finally:
        part.stop()
    with pytest.raises(SidecarUnavailable):
        control_request(sock, "status", timeout=5)


def test_restore_through_the_socket_restores_and_refreshes_the_index(parts):
    from guardian.runtime.context import INDEX_STALE
    from guardian.snapshots.take import take_snapshot

    ctx = parts.make()
    take_snapshot(ctx.paths)
    victim = first_document(parts.store)
    good = victim.read_bytes()
    victim.write_bytes(b"")
    parts.listen(ctx, INDEX_STALE)
    part = ControlPart(ctx, status=dict)
    part.start()
    try:
        answer = control_request(ctx.paths.control_socket, "restore", timeout=120)
    finally:
        part.stop()
    assert victim.read_bytes() == good and answer["child_paused"] is False
    assert parts.events(INDEX_STALE)
