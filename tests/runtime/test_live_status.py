"""/v1/status from the runtime's kept facts (issue 11, item 15): no rescan per call, fresh after changes."""

from __future__ import annotations

import http.client
import json
import signal
import threading

import pytest

from guardian.config import Config
from guardian.format.chromem import collection_dir_name
from guardian.local.paths import StatePaths
from guardian.runtime.assembly import assemble
from guardian.runtime.context import INDEX_STALE, SNAPSHOT_TAKEN, RuntimeContext
from guardian.runtime.live_status import LiveStatus
from guardian.runtime.status_facts import collect_status
from tests.waiting import wait_until


@pytest.fixture
def setup(plain_store, state_dir):
    config = Config(store=str(plain_store), http_port=0)
    return config, StatePaths.for_store(config.store_path, str(state_dir)).ensure()


def comparable(status: dict) -> dict:
    """The facts of a status dict, without the clock's fields."""
    snaps = {k: v for k, v in status["snapshots"].items() if k != "newest_age_seconds"}
    return {"store": status["store"], "snapshots": snaps, "warnings": status["warnings"],
            "exit_code": status["exit_code"]}


def test_many_calls_read_the_store_once_and_answer_like_guardian_status(setup):
    config, paths = setup
    live = LiveStatus(RuntimeContext(config, paths), lambda: None).start()
    try:
        answers = [live() for _ in range(50)]
        threads = [threading.Thread(target=lambda: answers.append(live())) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert live.reads == {"scan": 1, "snapshots": 1, "quarantined": 1}
        expected = comparable(collect_status(config, paths, status_file_data=None))
        assert all(comparable(answer) == expected for answer in answers)
        assert answers[0]["store"]["loadable"] is True and answers[0]["store"]["collections"]["total"] >= 1
    finally:
        live.stop()


def test_the_pre_flight_scan_is_used_not_repeated(setup):
    config, paths = setup
    ctx = RuntimeContext(config, paths)
    from guardian.store.scan import scan_store

    ctx.last_scan = scan_store(config.store_path)
    live = LiveStatus(ctx, lambda: None).start()
    try:
        live()
        assert live.reads["scan"] == 0
    finally:
        live.stop()


def test_a_change_the_index_hears_of_shows_in_the_status(setup):
    config, paths = setup
    ctx = RuntimeContext(config, paths)
    live = LiveStatus(ctx, lambda: None, debounce=0.05).start()
    try:
        assert live()["store"]["loadable"] is True
        folder = config.store_path / collection_dir_name("checkpoints")
        victim = sorted(p for p in folder.iterdir() if not p.name.startswith("00000000"))[0]
        victim.write_bytes(b"")  # a 0-byte document: chromem refuses the whole store
        ctx.emit(INDEX_STALE, collection=None, paths=[victim], background=False)
        assert wait_until(lambda: live()["store"]["loadable"] is False, timeout=30)
        assert live()["exit_code"] == 3
    finally:
        live.stop()


def test_a_snapshot_taken_shows_in_the_status(setup):
    from guardian.snapshots.take import take_snapshot

    config, paths = setup
    ctx = RuntimeContext(config, paths)
    live = LiveStatus(ctx, lambda: None, debounce=0.05).start()
    try:
        assert live()["snapshots"]["count"] == 0
        take_snapshot(paths)
        ctx.emit(SNAPSHOT_TAKEN)
        assert wait_until(lambda: live()["snapshots"]["count"] == 1, timeout=30)
    finally:
        live.stop()


def test_an_assembled_sidecar_serves_status_without_rescanning(setup):
    config, paths = setup
    runtime = assemble(config.replace(watch=False), paths)
    answers: list = []
    reads: list = []

    def clients(started) -> None:
        try:
            port = started.part("http").server.port
            for _ in range(20):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/v1/status")
                response = conn.getresponse()
                answers.append((response.status, json.loads(response.read())))
                conn.close()
            reads.append(dict(started.part("http").live_status.reads))
        finally:
            started.foreground.notify_signal(signal.SIGTERM)

    assert runtime.run(on_started=lambda started: threading.Thread(target=clients, args=(started,)).start()) == 0
    assert len(answers) == 20 and all(status == 200 for status, _ in answers)
    assert all(body["sidecar"]["running"] and body["store"]["loadable"] for _, body in answers)
    assert reads[0]["scan"] == 0  # the pre-flight's scan serves; the store is re-read only on a change
