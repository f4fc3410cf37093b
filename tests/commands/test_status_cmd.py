"""`guardian status` rendering: one line per part of the status model, ending with the verdict."""

from __future__ import annotations

import pytest

from guardian.commands.status_cmd import render_status
from guardian.local.paths import StatePaths
from guardian.store.scan import scan_store
from tests.conftest import DAMAGED, copy_store
from tests.runtime.test_status import fresh_snapshots, sidecar_file, status_for


@pytest.fixture
def paths(plain_store, state_dir) -> StatePaths:
    return StatePaths.for_store(plain_store, state_dir)


def test_render_last_repair_and_quarantine(paths, plain_store):
    repair = {"time": "2025-01-10T11:00:00Z", "summary": "re-created metadata of webapp_memories"}
    text = render_status(status_for(paths, scan_store(plain_store), fresh_snapshots(),
                                    sidecar_file(last_repair=repair), quarantine=3))
    assert "last repair: 2025-01-10T11:00:00Z re-created metadata of webapp_memories" in text
    assert "quarantine: 3 items" in text


def test_render_running_healthy(paths, plain_store):
    text = render_status(status_for(paths, scan_store(plain_store), fresh_snapshots(), sidecar_file()))
    lines = text.splitlines()
    assert lines[0] == "sidecar: running pid 4242, up 2h, child contextd running (restarts 0)"
    assert lines[1] == "store: loadable, 5 collections (5 healthy)"
    assert lines[2] == "snapshots: 24, newest 12 min ago (oldest 2025-01-09T12:48:00Z)"
    assert lines[-1] == "status: ok"


def test_render_damaged_and_stopped(paths, tmp_path):
    store = copy_store(DAMAGED / "plain" / "missing_metadata", tmp_path / "damaged")
    text = render_status(status_for(paths, scan_store(store), [], None))
    assert "sidecar: not running" in text
    assert "store: WOULD NOT LOAD (collection metadata file not found" in text
    assert "snapshots: none yet" in text
    assert text.splitlines()[-1].startswith("status: unloadable: store would not load")


def test_render_fatal_child(paths, plain_store):
    text = render_status(status_for(paths, scan_store(plain_store), fresh_snapshots(),
                                    sidecar_file(child_state="fatal", fatal=True)))
    assert "child contextd FATAL (restarts 5, last exit 1)" in text
