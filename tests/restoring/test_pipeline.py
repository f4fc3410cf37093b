"""The restore pipeline through the sidecar's executor: a real control socket in a thread, the
sidecar's side (`restore_for_sidecar`) on the same store, the client planning and confirming first."""

from __future__ import annotations

import pytest

from guardian.errors import RestoreError
from guardian.restoring import pipeline
from guardian.restoring.pipeline import Restore, ThroughSidecar, restore_for_sidecar
from guardian.runtime.control import ControlServer, control_request
from guardian.snapshots.take import take_snapshot

from tests.snapshots.conftest import tree_bytes


@pytest.fixture
def sidecar(plain_paths, tmp_path):
    """A control socket answering `restore` as the sidecar does (no child here)."""
    socket = tmp_path / "control.sock"
    handler = {"restore": lambda **wire: {"restore": restore_for_sidecar(plain_paths, wire), "child_paused": False}}
    with ControlServer(socket, handler):
        yield ThroughSidecar(lambda wire: control_request(socket, "restore", timeout=120, **wire))


def test_the_sidecar_restores_the_very_snapshot_that_was_planned_and_confirmed(plain_paths, clock, sidecar,
                                                                                 monkeypatch):
    store = plain_paths.store
    before = tree_bytes(store)
    first = take_snapshot(plain_paths, clock=clock).id
    extra = store / "40917930" / "extra.gob"
    extra.write_bytes((store / "40917930" / "02a5bdcd.gob").read_bytes())
    newer: list[str] = []

    def confirm(plan) -> bool:   # a newer snapshot (holding extra.gob) lands while the user is asked
        clock.advance(minutes=1)
        newer.append(take_snapshot(plain_paths, clock=clock).id)
        return True

    monkeypatch.setattr(pipeline, "WIRE_ACTIONS", 0)   # the sidecar's answer leaves every action out
    outcome = Restore.of_store(plain_paths).run(sidecar, confirm=confirm)
    assert newer and newer[0] != first
    assert outcome.snapshot_id == first and tree_bytes(store) == before   # not the newer "latest"
    assert outcome.notes["through_sidecar"] is True and outcome.loadable is True
    assert outcome.wire["actions_omitted"] is True                        # ... so the client shows its own plan
    assert outcome.actions() == [{"action": "move_aside", "path": "40917930/extra.gob",
                                  "reason": "not in the snapshot"}]
    assert len(outcome.quarantined) == 1


def test_a_cancelled_restore_never_reaches_the_sidecar(plain_paths, clock, sidecar):
    take_snapshot(plain_paths, clock=clock)
    extra = plain_paths.store / "40917930" / "extra.gob"
    extra.write_bytes(b"mine")
    with pytest.raises(RestoreError, match="cancelled"):
        Restore.of_store(plain_paths).run(sidecar, confirm=lambda plan: False)
    assert extra.read_bytes() == b"mine"
