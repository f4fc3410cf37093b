"""Index figures for bench_scale.py: build, restart and memory of guardian's index beside chromem's own.

| figure | baseline (same run) |
| --- | --- |
| cold index build (no cache; a new process each run) | chromem-go loading the same store (`chromemh bench`) |
| warm restart (cache in place; a new process each run) | a bare stat walk of the store (every file stat'ed) |
| `guardian run` after build + 200 HTTP queries: RSS, USS, PSS, anonymous | chromem's RSS after load + 200 queries |
| `guardian run` start to /readyz, warm caches (a new process each run) | the same start on an empty store |
| the index's part of that start (``index_built`` seconds, on the pre-flight's listings) | the warm restart above |
| idle `guardian run` on an empty store (no index to hold), after ``--idle`` seconds | the 60 MB target |

The start figures run `guardian run` on the sidecar's copy with a state dir that a first run filled
(index cache, verified-check cache, one snapshot, byte-code caches), so each start is a restart after a clean stop:
the pre-flight lists the store (the one walk), the index builds on that listing. The time is from
just before the process is spawned to the first /readyz 200 (polled every ``READY_POLL`` s); the
log's event times give the steps (watching_store, preflight_ok, index_built, http_listening).

Memory comes from ``/proc/PID/smaps_rollup``: RSS, PSS, USS (Private_Clean + Private_Dirty) and
Anonymous (private memory no file backs: what the index must keep below half of chromem's RSS).
The sidecar runs on a copy of the store (it may repair or snapshot it) with its own state dir.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.common import stat_walk

ROOT = Path(__file__).resolve().parents[1]
BUILD = """
import sys, time
from guardian.index.store_index import StoreIndex
def main():
    started = time.perf_counter()
    index = StoreIndex(sys.argv[1], compress=sys.argv[3] == "1", cache_dir=sys.argv[2]).build()
    took = time.perf_counter() - started
    index.save_cache()
    print(took, index.cached_collections)
if __name__ == "__main__":
    main()
"""
QUERIES = 200
READY_POLL = 0.02
START_STEPS = ("watching_store", "preflight_ok", "index_built", "http_listening")


def run_build(store: Path, cache: Path, compress: bool) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", BUILD, str(store), str(cache), "1" if compress else "0"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    return float(out[0]), int(out[1])


def chromem_bench(chromemh: Path, store: Path, compress: bool, collection: str, queries: int) -> dict:
    out = subprocess.run([str(chromemh), "bench", str(store), "1" if compress else "0", collection, str(queries), "10"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def largest_collection(chromemh: Path, store: Path, compress: bool) -> str:
    out = subprocess.run([str(chromemh), "load", str(store), "1" if compress else "0"],
                         capture_output=True, text=True, check=True).stdout
    collections = json.loads(out)["collections"]
    return max(collections, key=lambda name: collections[name]["count"])


def memory_of(pid: int) -> dict[str, float]:
    """MB figures of a process from smaps_rollup (USS = private clean + private dirty)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[key] = int(value.split()[0]) / 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"], "uss": fields["Private_Clean"] + fields["Private_Dirty"],
            "anon": fields["Anonymous"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sidecar:
    """`guardian run` (no child; or ``command`` serve) as a subprocess on a store, with its own state dir and port."""

    def __init__(self, store: Path, state: Path, compress: bool, command: str = "run", bytecode: bool = False) -> None:
        """``bytecode``: byte-code caches written and used, as installed code runs (PYTHONDONTWRITEBYTECODE
        dropped): a start-up figure without them would time compiling guardian, not starting it."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "GUARDIAN_STATE_DIR": str(state), "GUARDIAN_HTTP_PORT": str(self.port),
               "GUARDIAN_CONFIG": str(state / "no-config.toml"), "GUARDIAN_COMPRESS": "true" if compress else "false"}
        if bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.log = open(state.parent / f"{state.name}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "guardian", command, "--store", str(store)], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.state = state

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 900, poll: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"guardian run exited {self.proc.returncode}; see {self.log.name}")
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(poll)
        raise RuntimeError("guardian run did not become ready")

    def wait_cached(self, timeout: float = 300) -> None:
        """Until the first index build is in the cache (then the sidecar serves the mapped file)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not list(self.state.glob("stores/*/cache/index/*.manifest")):
            time.sleep(0.2)
        time.sleep(1.0)

    def query(self, collection: str, vectors: np.ndarray) -> None:
        path = f"/v1/collections/{collection}/query"
        for vector in vectors:
            request = urllib.request.Request(self.url + path, json.dumps({"vector": vector.tolist(), "k": 10}).encode(),
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def sidecar_memory(sidecar: Sidecar, collection: str | None, dimension: int) -> dict[str, float]:
    """Memory of a sidecar once its first index build is cached and it answered QUERIES queries."""
    try:
        sidecar.wait_ready()
        sidecar.wait_cached()
        if collection is None:
            collection = max(json.loads(sidecar.get("/v1/collections")[1])["collections"],
                             key=lambda c: c.get("documents", 0))["name"]
        vectors = np.random.default_rng(1).standard_normal((QUERIES, dimension)).astype(np.float32)
        sidecar.query(collection, vectors)
        return memory_of(sidecar.proc.pid)
    finally:
        sidecar.stop()


def dimension_of(store: Path, compress: bool) -> int:
    from guardian.index.store_index import StoreIndex

    index = StoreIndex(store, compress=compress)
    # one document is enough: decode the first file of the largest folder
    listings = index._listings()
    folder = max(listings, key=lambda d: len(listings[d].documents))
    from guardian.format.chromem import read_document

    name = sorted(listings[folder].documents)[0]
    return int(read_document(store / folder / name).embedding.shape[0])


def bench_index(store: Path, compress: bool, work: Path, repeat: int, figures, chromemh: Path | None,
                idle_seconds: float) -> None:
    """Append the index figures of one store to ``figures`` (bench_scale's table; see the module docstring)."""
    colds, warms, loads, walks = [], [], [], []
    cache = work / "index-cache"
    for _ in range(repeat):
        if chromemh:
            loads.append(chromem_bench(chromemh, store, compress, "-", 1)["load_s"])
        shutil.rmtree(cache, ignore_errors=True)
        seconds, cached = run_build(store, cache, compress)
        assert cached == 0
        colds.append(seconds)
        started = time.perf_counter()
        stat_walk(str(store))
        walks.append(time.perf_counter() - started)
        seconds, cached = run_build(store, cache, compress)
        assert cached > 0, "the warm restart did not use the cache"
        warms.append(seconds)
    base_label = "chromem-go load (chromemh bench)" if chromemh else "chromemh missing"
    figures.add("index cold build (new process)", colds, base_label, loads or [float("nan")])
    figures.add("index warm restart (new process; target 0.3 s)", warms, "bare stat walk", walks)

    copy = work / "sidecar-store"  # kept between runs of the bench: copying 100k files takes minutes
    if not (copy / ".bench-copy-complete").exists() or (copy / ".bench-copy-complete").read_text() != str(store):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(store, copy, symlinks=True)
        (copy / ".bench-copy-complete").write_text(str(store))  # a file at the root: chromem ignores it
    collection = largest_collection(chromemh, store, compress) if chromemh else None
    dimension = dimension_of(store, compress)
    chromem_rss = chromem_bench(chromemh, store, compress, collection, QUERIES)["rss_mb"] if chromemh else float("nan")
    for command in ("run", "serve"):
        state = work / f"{command}-state"
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir()
        mine = sidecar_memory(Sidecar(copy, state, compress, command), collection, dimension)
        what = "`guardian run`" if command == "run" else "`guardian serve` (index, watcher, HTTP only)"
        figures.add_memory(f"{what} after build + {QUERIES} queries", mine,
                           f"chromem RSS after load + {QUERIES} queries", chromem_rss)

    empty = work / "empty-store"
    shutil.rmtree(empty, ignore_errors=True)
    empty.mkdir()
    start_figures(copy, empty, compress, work, repeat, figures, warms)
    idle_state = work / "idle-state"
    shutil.rmtree(idle_state, ignore_errors=True)
    idle_state.mkdir()
    idle = Sidecar(empty, idle_state, compress)
    try:
        idle.wait_ready()
        time.sleep(idle_seconds)
        quiet = memory_of(idle.proc.pid)
    finally:
        idle.stop()
    figures.add_memory(f"idle `guardian run`, empty store, after {idle_seconds:.0f} s", quiet, "target", 60.0)


def log_events(log_path: Path) -> dict[str, dict]:
    """The first record of each event in a sidecar's JSON log, with its time as epoch seconds ("t")."""
    from datetime import datetime

    events: dict[str, dict] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "event" in record and record["event"] not in events:
            stamp = record.get("timestamp", "").replace("Z", "+00:00")
            record["t"] = datetime.fromisoformat(stamp).timestamp() if stamp else float("nan")
            events[record["event"]] = record
    return events


def timed_start(store: Path, state: Path, compress: bool) -> dict[str, float]:
    """One `guardian run` start: seconds from spawning it to the first /readyz 200, and to each step."""
    spawned = time.time()
    sidecar = Sidecar(store, state, compress, bytecode=True)
    try:
        sidecar.wait_ready(poll=READY_POLL)
        ready = time.time() - spawned
    finally:
        sidecar.stop()
    events = log_events(Path(sidecar.log.name))
    out = {"ready": ready, "index_seconds": float(events.get("index_built", {}).get("seconds", float("nan")))}
    for step in START_STEPS:
        out[step] = events[step]["t"] - spawned if step in events else float("nan")
    return out


def start_figures(copy: Path, empty: Path, compress: bool, work: Path, repeat: int, figures,
                  warm_restarts: list[float]) -> None:
    """`guardian run` restarts on the copy with warm caches, beside the same start on an empty store."""
    from guardian.local.paths import StatePaths
    from guardian.snapshots.repository import Repository

    state = work / "start-state"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    first = Sidecar(copy, state, compress, bytecode=True)   # fills the caches, takes the first snapshot
    try:
        first.wait_ready()
        first.wait_cached()
        snapshots = Repository(StatePaths.for_store(copy, state).snapshots)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and not snapshots.list_ids():
            time.sleep(0.5)
    finally:
        first.stop()
    empty_state = work / "start-empty-state"
    warm, bare = [], []
    for _ in range(repeat):
        shutil.rmtree(empty_state, ignore_errors=True)
        empty_state.mkdir()
        bare.append(timed_start(empty, empty_state, compress))
        warm.append(timed_start(copy, state, compress))
    figures.add("`guardian run` start to /readyz, warm caches", [w["ready"] for w in warm],
                "same start, empty store", [b["ready"] for b in bare])
    figures.add("index build within it (on pre-flight listings)", [w["index_seconds"] for w in warm],
                "in-process warm restart (lists itself)", warm_restarts)
    for label, runs in (("warm", warm), ("empty store", bare)):
        steps = "  ".join(f"{step} {median([r[step] for r in runs]):.3f}" for step in (*START_STEPS, "ready"))
        print(f"  start steps, {label} (s after spawn, medians): {steps}", flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
