"""The one assembly: which parts each command gets, start/stop order, the one signal path."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from guardian.config import Config
from guardian.errors import LockError
from guardian.local.paths import StatePaths
from guardian.runtime.assembly import Runtime, WaitForSignal, assemble
from guardian.runtime.context import INDEX_STALE, RuntimeContext
from guardian.runtime.parts import BasePart
from guardian.runtime.parts.lock import LockPart
from guardian.runtime.status import StatusFile
from tests.waiting import wait_until


@pytest.fixture
def setup(plain_store, state_dir):
    config = Config(store=str(plain_store), http_port=0)
    return config, StatePaths.for_store(config.store_path, str(state_dir))


def names(runtime) -> list[str]:
    return [part.name for part in runtime.parts]


def test_run_serve_and_run_with_cmd_take_their_parts_from_one_assembly(setup):
    config, paths = setup
    # the watcher right after the lock: it must hear every write from before the pre-flight's listing on
    guarded = ["lock", "watcher", "preflight", "snapshots", "replication", "capture", "index", "mcp_answers", "health",
               "live_repair", "http", "control", "heartbeat"]
    watching = ("capture", "health", "live_repair", "watcher")  # continuous capture and live repair need events
    assert names(assemble(config, paths, ["contextd"])) == [*guarded, "supervisor"]
    assert names(assemble(config, paths)) == guarded
    assert names(assemble(config, paths, guard=False)) == ["watcher", "index", "health", "http"]
    assert names(assemble(config, paths, guard=False, watch=False)) == ["index", "http"]
    assert names(assemble(config.replace(watch=False), paths)) == [n for n in guarded if n not in watching]
    assert "capture" not in names(assemble(config.replace(capture=False), paths))
    assert "live_repair" not in names(assemble(config.replace(live_repair=False), paths))
    with_cmd = assemble(config, paths, ["contextd"])
    assert with_cmd.foreground is with_cmd.parts[-1]
    assert isinstance(assemble(config, paths).foreground, WaitForSignal)


class Recorder(BasePart):
    def __init__(self, ctx, name, log, fail_start=False, fail_stop=False):
        super().__init__(ctx)
        self.name, self.log, self.fail_start, self.fail_stop = name, log, fail_start, fail_stop

    def start(self):
        self.log.append(f"start {self.name}")
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")

    def stop(self):
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} cannot stop")

    def status(self):
        return {self.name: "up"}


class Returns:
    """A foreground that returns at once."""

    def run(self):
        return 7

    def notify_signal(self, signum):
        raise AssertionError("no signal expected")


def runtime_of(config, paths, *parts_spec, foreground=None):
    ctx = RuntimeContext(config, paths)
    runtime = Runtime(ctx)
    log: list[str] = []
    runtime.parts = [Recorder(ctx, name, log, **opts) for name, opts in parts_spec]
    runtime.foreground = foreground or Returns()
    return runtime, log


def test_parts_start_in_order_and_stop_in_reverse_with_the_foregrounds_exit_code(setup):
    runtime, log = runtime_of(*setup, ("a", {}), ("b", {}), ("c", {}))
    assert runtime.run() == 7
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


def test_a_part_that_fails_to_start_stops_only_the_started_ones(setup):
    runtime, log = runtime_of(*setup, ("a", {}), ("b", {"fail_start": True}), ("c", {}))
    with pytest.raises(RuntimeError, match="b cannot start"):
        runtime.run()
    assert log == ["start a", "start b", "stop a"]


def test_a_part_that_fails_to_stop_does_not_keep_the_others_running(setup):
    runtime, log = runtime_of(*setup, ("a", {}), ("b", {"fail_stop": True}), ("c", {}))
    assert runtime.run() == 7
    assert log[-3:] == ["stop c", "stop b", "stop a"]


def test_each_part_adds_its_keys_to_the_sidecar_status(setup):
    runtime, _ = runtime_of(*setup, ("a", {}), ("b", {}))
    sidecar = runtime.status_file_data(running=True)["sidecar"]
    assert sidecar["a"] == "up" and sidecar["b"] == "up"
    assert sidecar["running"] is True and sidecar["child"] is None and sidecar["http"] is None
    assert runtime.health() == {"healthy": True, "status": "ok", "child": None}


def test_signals_only_reach_the_foregrounds_queue_sighup_refreshes_sigterm_stops(setup):
    runtime, log = runtime_of(*setup, ("a", {}))
    ctx = runtime.ctx
    runtime.foreground = WaitForSignal(ctx)
    refreshes = []
    ctx.on(INDEX_STALE, lambda **fields: refreshes.append(fields))
    before = signal.getsignal(signal.SIGTERM)

    def send():
        wait_until(lambda: signal.getsignal(signal.SIGTERM) is not before, timeout=30)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: refreshes, timeout=30)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send)
    sender.start()
    assert runtime.run() == 0
    sender.join()
    assert refreshes == [{"collection": None, "paths": None, "background": True}]
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    assert log == ["start a", "stop a"]


def test_a_second_sidecar_on_the_same_store_is_refused_and_leaves_the_status_file_alone(setup):
    config, paths = setup
    paths.ensure()
    first = LockPart(RuntimeContext(config, paths))
    first.start()
    try:
        StatusFile(paths.status_file).write({"sidecar": {"running": True, "pid": 1}})
        second = assemble(config, paths)
        with pytest.raises(LockError, match="another guardian sidecar"):
            second.run()
        assert StatusFile(paths.status_file).read() == {"sidecar": {"running": True, "pid": 1}}
    finally:
        first.stop()
    again = LockPart(RuntimeContext(config, paths))
    again.start()  # released: the next sidecar gets it
    again.stop()


def test_a_write_right_after_the_preflights_listing_reaches_the_index_built_on_that_listing(setup):
    """The crash/race window of listing the store once at start: the index builds on the pre-flight's
    listings, so a write landing just after that listing must be heard by a watcher that was already
    running. The write here is made from inside the pre-flight, the moment its scan is published."""
    import numpy as np

    from guardian.format import chromem
    from guardian.runtime.context import STORE_SCANNED

    config, paths = setup
    store = config.store_path
    folder = store / "40917930"
    victim = sorted(p for p in folder.iterdir() if p.name != "00000000.gob")[0]
    victim_id = chromem.read_document(victim).id
    runtime = assemble(config, paths)
    ctx = runtime.ctx
    written = []

    def write_once(scan):
        if written:
            return
        vector = np.zeros(384, dtype=np.float32)
        vector[3] = 1.0
        doc = chromem.Document("written-in-the-window", {}, vector, "late")
        (folder / f"{chromem.document_stem(doc.id)}.gob").write_bytes(chromem.encode_document(doc))
        victim.unlink()
        written.append(scan)

    ctx.on(STORE_SCANNED, write_once)

    def caught_up():
        index = ctx.index
        if index is None or not index.built or "40917930" not in index._by_dir:
            return False
        collection = index._by_dir["40917930"]
        return collection.row_of("written-in-the-window") is not None and collection.row_of(victim_id) is None

    def stop_when_caught_up(_runtime):
        def wait_then_stop():
            wait_until(caught_up, timeout=120)
            os.kill(os.getpid(), signal.SIGTERM)
        threading.Thread(target=wait_then_stop, daemon=True).start()

    assert runtime.run(on_started=stop_when_caught_up) == 0
    assert written and written[0].listings is None       # the index took the listing the write came after
    assert caught_up(), "the index missed a write made between the pre-flight's listing and its build"
    assert runtime.part("index").start_listings is None


def test_a_real_chromem_writer_started_right_after_the_preflights_listing_is_all_in_the_index(setup, chromemh):
    """The same window with the real chromem-go writer (as a running contextd writes): it starts the
    moment the pre-flight's scan is published and adds documents one by one while the index builds
    on that scan's listings; once it is done the index holds what chromem itself loads."""
    import json
    import subprocess

    from guardian.runtime.context import STORE_SCANNED
    from tests.conftest import chromem_load

    config, paths = setup
    store = config.store_path
    runtime = assemble(config, paths)
    ctx = runtime.ctx
    writers = []

    def start_writer(scan):
        if not writers:
            writers.append(subprocess.Popen([str(chromemh), "writer", str(store), "0", "checkpoints", "30", "20", "7"],
                                            stdout=subprocess.PIPE, text=True))

    ctx.on(STORE_SCANNED, start_writer)
    outcome = {}

    def indexed_ids():
        index = ctx.index
        if index is None or not index.built:
            return None
        return sorted(index.collection("checkpoints").rows.ids)

    def check_then_stop(_runtime):
        def run():
            try:
                lines = [json.loads(line) for line in writers[0].stdout]
                writers[0].wait(300)
                outcome["written"] = [line["id"] for line in lines if "id" in line]
                outcome["chromem"] = chromem_load(chromemh, store)["collections"]["checkpoints"]["count"]
                outcome["caught_up"] = wait_until(lambda: (ids := indexed_ids()) is not None
                                                  and len(ids) == outcome["chromem"]
                                                  and set(outcome["written"]) <= set(ids), timeout=120)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)
        threading.Thread(target=run, daemon=True).start()

    assert runtime.run(on_started=check_then_stop) == 0
    assert len(outcome["written"]) == 30
    assert outcome["caught_up"], f"index {len(indexed_ids() or [])} documents, chromem {outcome['chromem']}"
