"""A live store, end to end with real processes: continuous capture, live repair, true health, exec.

Deadlines are generous (a loaded 2-core box); the product targets (RPO <= 5 s, repair within 2 s of
settling) are measured in bench/bench_live.py, not here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from guardian.format.chromem import collection_dir_name
from guardian.snapshots.manifest import FLAG_DAMAGED, FLAG_UNSTABLE
from guardian.snapshots.repository import Repository
from guardian.snapshots.verify import materialize
from tests.conftest import chromem_load, run_cli
from tests.runtime.live_helpers import Guardian
from tests.waiting import wait_until

DEADLINE = 60.0


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def collections(contents) -> list[dict]:
    return [{**c, "documents": len(c["documents"])} for c in contents["collections"] if len(c["documents"]) >= 2]


def some_document(store, folder: str):
    return sorted(p for p in (store / folder).glob("*.gob") if not p.name.startswith("00000000"))[0]


def captured(guardian: Guardian, files) -> bool:
    rows = guardian.newest_rows()
    return all(rel in rows and rows[rel].hash == sha(guardian.store / rel)
               and not rows[rel].flags & (FLAG_UNSTABLE | FLAG_DAMAGED) for rel in files)


@pytest.fixture
def guardian(plain_store, tmp_path):
    started = []

    def start(command="run", **kwargs):
        g = Guardian(plain_store, tmp_path, command, **kwargs).wait_ready()
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


def run_writer(chromemh, store, collection, count, interval_ms, seed, out: list, tries: int = 5):
    """A real chromem writer (it opens the store, then adds documents); ``out`` fills as it writes.

    chromem's loader refuses a store holding a file another writer is rewriting at that instant (it
    truncates, then writes): two writers starting together can make the second one fail to open,
    which is chromem's own race, not guardian's. A writer that failed before writing anything is
    started again (``tries`` times); any later failure is reported in ``out``."""
    folder = collection_dir_name(collection)
    for attempt in range(tries):
        proc = subprocess.Popen([str(chromemh), "writer", str(store), "0", collection, str(count),
                                 str(interval_ms), str(seed)], stdout=subprocess.PIPE)
        wrote, failure = False, None
        for line in proc.stdout:
            data = json.loads(line)
            if "file" in data:
                wrote = True
                out.append(f"{folder}/{data['file']}.gob")
            elif not data.get("ok", True):
                failure = f"writer failed: {data.get('error')}"
        proc.wait(600)
        if failure is None or wrote or attempt == tries - 1:
            if failure is not None:
                out.append(failure)
            return


def test_real_writers_are_captured_and_every_write_survives_kill_9(guardian, plain_store, contents, chromemh,
                                                                     tmp_path):
    g = guardian()
    assert wait_until(lambda: Repository(g.paths.snapshots).list_ids(), timeout=DEADLINE)
    existing, victim_coll = collections(contents)[0], collections(contents)[1]
    victim = some_document(plain_store, victim_coll["dir"])
    good = victim.read_bytes()
    before = chromem_load(chromemh, plain_store)["collections"]
    written_a, written_b = [], []
    writers = [threading.Thread(target=run_writer, args=(chromemh, plain_store, name, count, interval, seed, out))
               for name, count, interval, seed, out in ((existing["name"], 40, 50, 1, written_a),
                                                         ("live_new_memories", 25, 80, 2, written_b))]
    for writer in writers:
        writer.start()
    assert wait_until(lambda: written_a and written_b, timeout=DEADLINE)  # both opened the store and write
    victim.write_bytes(good[: len(good) // 2])  # damage strikes another collection meanwhile
    for writer in writers:
        writer.join()
    last_write = time.monotonic()
    assert len(written_a) == 40 and len(written_b) == 25
    assert wait_until(lambda: captured(g, written_a + written_b), timeout=DEADLINE), "writes not captured"
    latency = time.monotonic() - last_write
    assert wait_until(lambda: victim.read_bytes() == good, timeout=DEADLINE), "damage not repaired"
    g.kill()
    print(f"captured {len(written_a) + len(written_b)} writes {latency:.2f} s after the last one")
    loaded = chromem_load(chromemh, plain_store)
    assert loaded["ok"], loaded["error"]
    assert loaded["collections"][existing["name"]]["count"] == before[existing["name"]]["count"] + 40
    assert loaded["collections"]["live_new_memories"]["count"] == 25
    repo = Repository(g.paths.snapshots)
    restored = tmp_path / "restored"
    materialize(repo, repo.read_manifest(repo.list_ids()[-1]), restored)
    assert chromem_load(chromemh, restored)["collections"] == loaded["collections"]


DAMAGES = ["empty", "cut", "garbage", "fifo", "metadata_deleted", "metadata_empty", "stray_folder"]


def apply_damage(store, kind: str, folder: str):
    """Damage one collection folder; returns the path to check and its good bytes (None: must vanish)."""
    doc = some_document(store, folder)
    meta = store / folder / "00000000.gob"
    cuts = {"empty": lambda data: b"", "cut": lambda data: data[:len(data) // 3],
            "garbage": lambda data: os.urandom(len(data))}
    if kind in cuts:
        good = doc.read_bytes()
        doc.write_bytes(cuts[kind](good))
        return doc, good
    if kind == "fifo":
        good = doc.read_bytes()
        doc.unlink()
        os.mkfifo(doc)
        return doc, good
    if kind in ("metadata_deleted", "metadata_empty"):
        good = meta.read_bytes()
        if kind == "metadata_deleted":
            meta.unlink()
        else:
            meta.write_bytes(b"")
        return meta, good
    stray = store / ".backup"
    stray.mkdir()
    shutil.copy(doc, stray / doc.name)
    return stray, None


def is_good(path, good) -> bool:
    if good is None:
        return not os.path.lexists(path)
    try:
        return path.is_file() and not path.is_symlink() and path.read_bytes() == good
    except OSError:
        return False


def test_each_damage_kind_is_repaired_alerted_and_reported_truly(guardian, plain_store, contents, chromemh):
    g = guardian()
    assert wait_until(lambda: Repository(g.paths.snapshots).list_ids(), timeout=DEADLINE)
    folders = [c["dir"] for c in collections(contents)]
    for number, kind in enumerate(DAMAGES):
        alerts_before = len(g.alerts())
        path, good = apply_damage(plain_store, kind, folders[number % len(folders)])
        assert wait_until(lambda: is_good(path, good), timeout=DEADLINE), f"{kind}: not repaired"
        assert wait_until(lambda: g.readyz()[0] == 200 and g.metric("guardian_store_loadable") == 1,
                          timeout=DEADLINE), f"{kind}: health signals did not recover"
        def events():
            return [a["event"] for a in g.alerts()[alerts_before:]]

        assert wait_until(lambda: "repair_done" in events(), timeout=DEADLINE), (kind, events())
        events = events()
        assert "corruption_found" in events, (kind, events)
        assert events.index("corruption_found") < events.index("repair_done"), (kind, events)
    assert g.metric("guardian_repairs_total") >= len(DAMAGES)
    assert (g.metric('guardian_collections{status="damaged"}') or 0) == 0
    assert chromem_load(chromemh, plain_store)["ok"]
    status = json.loads(run_cli("status", "--store", str(plain_store), "--json", env=g.env).stdout_text)
    assert status["store"]["loadable"] is True
    # /v1/status is served from kept facts, re-read in the background after each repair event
    assert wait_until(lambda: json.loads(g.get("/v1/status")[1])["store"]["loadable"] is True, timeout=DEADLINE)


def test_damage_while_a_writer_writes_the_same_collection_loses_nothing(guardian, plain_store, contents,
                                                                         chromemh):
    g = guardian()
    assert wait_until(lambda: Repository(g.paths.snapshots).list_ids(), timeout=DEADLINE)
    target = collections(contents)[0]
    victim = some_document(plain_store, target["dir"])
    good = victim.read_bytes()
    written: list[str] = []
    writer = threading.Thread(target=run_writer, args=(chromemh, plain_store, target["name"], 30, 60, 3, written))
    writer.start()
    assert wait_until(lambda: written, timeout=DEADLINE)
    victim.write_bytes(b"")
    writer.join()
    assert wait_until(lambda: victim.read_bytes() == good, timeout=DEADLINE)
    assert len(written) == 30
    loaded = chromem_load(chromemh, plain_store)
    assert loaded["ok"], loaded["error"]
    assert loaded["collections"][target["name"]]["count"] == target["documents"] + 30
    assert wait_until(lambda: captured(g, written), timeout=DEADLINE)


def test_a_file_held_mid_write_is_never_touched(guardian, plain_store, contents):
    """Held for writing past settle_seconds but short of held_repair_seconds: not damage, never touched
    (past held_repair_seconds it is made loadable: test_a_writer_paused_between_...)."""
    g = guardian(extra_env={"GUARDIAN_HELD_REPAIR_SECONDS": "60"})
    assert wait_until(lambda: Repository(g.paths.snapshots).list_ids(), timeout=DEADLINE)
    doc = some_document(plain_store, collections(contents)[0]["dir"])
    good = doc.read_bytes()
    inode = os.stat(doc).st_ino
    touched = []
    with open(doc, "r+b") as handle:     # chromem's way: truncate in place, then write
        handle.truncate(0)
        handle.flush()
        held_until = time.monotonic() + 3.0  # well past settle_seconds (1 s): only its writer's hold protects it
        while time.monotonic() < held_until:
            info = os.stat(doc)
            if info.st_ino != inode or info.st_size != 0:
                touched.append(info)
            time.sleep(0.05)
        handle.write(good)
    assert touched == [], "guardian touched a file a writer was still writing"
    time.sleep(4.0)  # give guardian every chance to (wrongly) act after the close
    assert os.stat(doc).st_ino == inode and doc.read_bytes() == good
    assert not [a for a in g.alerts() if a["event"] == "corruption_found"]
    assert wait_until(lambda: captured(g, [f"{doc.parent.name}/{doc.name}"]), timeout=DEADLINE)


def test_serve_readyz_and_metrics_follow_the_store(guardian, plain_store, contents):
    g = guardian("serve")
    assert wait_until(lambda: g.readyz()[0] == 200, timeout=DEADLINE), g.readyz()
    assert g.metric("guardian_store_loadable") == 1
    assert g.metric('guardian_collections{status="healthy"}') == len(contents["collections"])
    doc = some_document(plain_store, collections(contents)[0]["dir"])
    good = doc.read_bytes()
    doc.write_bytes(good[:10])
    assert wait_until(lambda: g.readyz()[0] == 503, timeout=DEADLINE)
    assert wait_until(lambda: g.metric("guardian_store_loadable") == 0, timeout=DEADLINE)
    assert g.metric('guardian_collections{status="damaged"}') == 1
    doc.write_bytes(good)  # serve never repairs; the fix is someone else's
    assert wait_until(lambda: g.readyz()[0] == 200 and g.metric("guardian_store_loadable") == 1, timeout=DEADLINE)
    assert g.metric('guardian_collections{status="damaged"}') == 0


ECHO = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"


def test_eight_concurrent_execs_on_a_damaged_store_one_repair_eight_children(plain_store, state_dir, tmp_path):
    env = {"GUARDIAN_STATE_DIR": str(state_dir)}
    assert run_cli("snapshot", "--store", str(plain_store), env=env).returncode == 0
    doc = next(plain_store.glob("*/1*.gob"))
    good = doc.read_bytes()
    doc.write_bytes(b"")
    full_env = {**os.environ, **env}
    payloads = [os.urandom(4096) + f"session {i}\n".encode() for i in range(8)]
    procs = [subprocess.Popen([sys.executable, "-m", "guardian", "exec", "--store", str(plain_store), "--",
                               sys.executable, "-c", ECHO], env=full_env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in payloads]
    results = [proc.communicate(payload, timeout=300) for proc, payload in zip(procs, payloads)]
    for proc, payload, (out, err) in zip(procs, payloads, results):
        assert proc.returncode == 0, err.decode()[-2000:]
        assert out == payload  # byte-exact, nothing of guardian's on stdout
    assert doc.read_bytes() == good
    entries = json.loads(run_cli("quarantine", "list", "--store", str(plain_store), "--json", env=env).stdout_text)
    assert len(entries) == 1  # one repair preserved the damaged original once
    repairs = sum(err.decode().count('"store_repaired"') for _, err in results)
    assert repairs == 1


def test_exec_asks_the_running_sidecar_for_the_verdict(guardian, plain_store):
    g = guardian()
    payload = b"hello over stdio\n"
    proc = run_cli("exec", "--store", str(plain_store), "--log-level", "info", "--", sys.executable, "-c", ECHO,
                   env=g.env, input=payload)
    assert proc.returncode == 0, proc.stderr_text
    assert proc.stdout == payload
    assert '"verdict_from_sidecar"' in proc.stderr_text and '"preflight_ok"' not in proc.stderr_text


def test_every_count_follows_a_real_writer_metrics_v1_status_and_status_agree(guardian, plain_store, contents,
                                                                               chromemh):
    """guardian_documents, /v1/status and `guardian status` all reach chromem's count after each burst of
    real writes, with guardian running on (how fast they follow is measured in bench/bench_live.py)."""
    g = guardian()
    coll = collections(contents)[1]

    def counts() -> tuple:
        v1 = json.loads(g.get("/v1/status")[1])["store"]["documents"]
        status = json.loads(run_cli("status", "--json", "--store", str(plain_store), env=g.env).stdout_text)
        return g.metric("guardian_documents"), v1, status["store"]["documents"]

    def chromems() -> int:
        return sum(c["count"] for c in chromem_load(chromemh, plain_store)["collections"].values())

    assert wait_until(lambda: counts() == (chromems(),) * 3, timeout=DEADLINE), counts()
    for seed in (3, 4):   # two bursts: each one is followed while guardian keeps running
        written: list = []
        run_writer(chromemh, plain_store, coll["name"], 30, 40, seed, written)
        assert len(written) == 30, written[-1:]
        expected = chromems()
        assert wait_until(lambda: counts() == (expected,) * 3, timeout=DEADLINE), (counts(), expected)
    health = g.log_events("health_scan_failed")
    assert health == [], health


def test_a_store_removed_while_guarded_is_not_captured_empty_and_its_successor_is_guarded(
        guardian, plain_store, chromemh, tmp_path):
    """`rm -rf` of the whole store while `run` guards it: no empty snapshot becomes "latest" (a restore
    of latest brings the old store back), one warning + one `store_gone` alert instead of a capture
    failure every few seconds, status says GONE; then contextd's next start makes a new store, and its
    writes are captured and counted like any other (the watcher watches the new folder)."""
    g = guardian()
    assert wait_until(lambda: Repository(g.paths.snapshots).list_ids(), timeout=DEADLINE)
    before = chromem_load(chromemh, plain_store)["collections"]
    shutil.rmtree(plain_store)
    assert wait_until(lambda: g.log_events("store_gone"), timeout=DEADLINE)
    assert wait_until(lambda: [a for a in g.alerts() if a.get("event") == "store_gone"], timeout=DEADLINE)
    status = json.loads(run_cli("status", "--store", str(plain_store), "--json", env=g.env).stdout_text)
    assert status["source"] == "sidecar" and status["store"]["gone"] is True
    assert any("went away while guarded" in w for w in status["warnings"])
    repo = Repository(g.paths.snapshots)
    assert repo.read_manifest(repo.list_ids()[-1]).files, "an empty snapshot became the newest"
    assert not g.log_events("capture_failed")

    written: list = []
    run_writer(chromemh, plain_store, "after_the_reset", 12, 30, 5, written)
    assert len(written) == 12, written
    assert wait_until(lambda: captured(g, written), timeout=DEADLINE), "the new store's writes were not captured"
    assert wait_until(lambda: json.loads(run_cli("status", "--store", str(plain_store), "--json",
                                                 env=g.env).stdout_text)["store"].get("documents") == 12,
                      timeout=DEADLINE)
    g.stop()
    restored = tmp_path / "old-store"
    old = [i for i in repo.list_ids() if len(repo.read_manifest(i).files) > 2][0]
    materialize(repo, repo.read_manifest(old), restored)
    assert chromem_load(chromemh, restored)["collections"] == before


@pytest.mark.timeout(600)
@pytest.mark.parametrize("pause", [pytest.param(45, marks=pytest.mark.slow(60)),
                                   pytest.param(200, marks=pytest.mark.slow(220))])
def test_a_writer_paused_between_its_truncate_and_its_write_loses_nothing(guardian, plain_store, contents,
                                                                           chromemh, tmp_path, pause):
    """A contextd stopped (SIGSTOP, a debugger, swapped out) right after chromem truncated a document:
    meanwhile a contextd starting loads the store (guardian put the good copy in place), and when the
    writer wakes - 45 s or minutes later - its update is what chromem loads and what the next snapshot
    holds. Another real writer goes on writing meanwhile."""
    from tests.paused_writer import PausedWriter, chromem_contents, updated_document

    g = guardian()
    assert wait_until(lambda: Repository(g.paths.snapshots).list_ids(), timeout=DEADLINE)
    doc = some_document(plain_store, collections(contents)[0]["dir"])
    rel = f"{doc.parent.name}/{doc.name}"
    good = doc.read_bytes()
    update = updated_document(good, f"updated after a pause of {pause} s")
    started = time.monotonic()
    paused = PausedWriter(doc, tmp_path)
    try:
        assert wait_until(lambda: chromem_load(chromemh, plain_store)["ok"] and doc.read_bytes() == good,
                          timeout=DEADLINE), "the store was not made loadable during the pause"
        others: list[str] = []
        run_writer(chromemh, plain_store, "written_during_the_pause", 20, 100, 7, others)
        assert len(others) == 20, others[-1:]
        time.sleep(max(0.0, started + pause - time.monotonic()))
        paused.write(update)
    finally:
        paused.stop()
    assert wait_until(lambda: doc.read_bytes() == update, timeout=DEADLINE), "the writer's update was lost"
    assert f"updated after a pause of {pause} s" in chromem_contents(chromemh, plain_store).values()
    loaded = chromem_load(chromemh, plain_store)
    assert loaded["ok"] and loaded["collections"]["written_during_the_pause"]["count"] == 20
    assert wait_until(lambda: captured(g, [rel, *others]), timeout=DEADLINE), "the update is not in a snapshot"
    assert not [a for a in g.alerts() if a["event"] in ("corruption_found", "repair_impossible")]
    assert g.log_events("held_write_put_back")


def test_a_truncate_nobody_holds_is_repaired_once_settled(guardian, plain_store, contents):
    """truncate(2) of a document: one modify event, no open, no close. Nobody holds the file, so it has
    settled after settle_seconds (1 s) and is repaired at once - not after the 30 s a lost close event
    used to cost (bench/bench_live.py measures the time)."""
    g = guardian()
    assert wait_until(lambda: Repository(g.paths.snapshots).list_ids(), timeout=DEADLINE)
    doc = some_document(plain_store, collections(contents)[1]["dir"])
    good = doc.read_bytes()
    os.truncate(doc, 0)
    assert wait_until(lambda: doc.read_bytes() == good, timeout=20.0), "not repaired once settled"
    assert wait_until(lambda: [a["event"] for a in g.alerts()][-2:] == ["corruption_found", "repair_done"],
                      timeout=DEADLINE), g.alerts()


def test_collections_contextd_moved_aside_and_back_are_guarded_at_once(guardian, plain_store, contents, chromemh):
    """contextd's resilient loader moves collection folders to ``.quarantine/<hash>/`` (``MkdirAll``, then a
    rename of each, at once); moved back (by hand, or a tool), every memory a real writer then adds to them
    is in a snapshot and counted by the live health within seconds. (watchdog's observer had lost those
    folders' watches in most tries: no event ever came from them, only the 10-minute rescan counted them.)"""
    g = guardian()
    assert wait_until(lambda: Repository(g.paths.snapshots).list_ids(), timeout=DEADLINE)
    moved = collections(contents)[:3]
    aside = plain_store / ".quarantine"
    aside.mkdir()
    for coll in moved:
        os.rename(plain_store / coll["dir"], aside / coll["dir"])
    assert wait_until(lambda: all(f".quarantine/{c['dir']}/00000000.gob" in g.newest_rows() for c in moved),
                      timeout=DEADLINE), "contextd's move not captured"
    for coll in moved:
        os.rename(aside / coll["dir"], plain_store / coll["dir"])
    aside.rmdir()

    def counted() -> tuple:
        return g.metric("guardian_documents"), json.loads(g.get("/v1/status")[1])["store"]["documents"]

    def chromems() -> int:
        return sum(c["count"] for c in chromem_load(chromemh, plain_store)["collections"].values())

    back = [f"{c['dir']}/00000000.gob" for c in moved]
    expected = chromems()
    assert wait_until(lambda: captured(g, back) and counted() == (expected, expected), timeout=DEADLINE), \
        "the move back is not captured or counted"
    written: list[str] = []   # only now: the writes are new events in folders that were moved twice
    for seed, coll in enumerate(moved):
        run_writer(chromemh, plain_store, coll["name"], 4, 20, 20 + seed, written)
    assert len(written) == 12, written[-1:]
    assert wait_until(lambda: captured(g, written), timeout=DEADLINE), "writes into the moved-back folders lost"
    expected = chromems()
    assert wait_until(lambda: counted() == (expected, expected), timeout=DEADLINE), (counted(), expected)
