"""Bench: guarding a live store. RPO, CPU, 24 h of continuous snapshots on disk, exec overhead.

    .venv/bin/python bench/bench_live.py --docs 100000 --writes 1000 --work /tmp/bench-live

1. A store of ``--docs`` documents (bench/common.make_store, 5 collections); `guardian run` on it
   (no child), waited until its index is built and its first snapshot committed.
2. RPO: the real chromem writer (``chromemh writer``, as a running contextd writes) adds ``--writes``
   documents at ``--rate`` per second to an existing collection. For each write, the latency from the
   moment the writer reported it to the ``snapshot_captured`` log line of the first snapshot that holds
   it (logged after the commit). p50 / p99 / max. Baseline in the same run: the writer's own interval.
3. CPU of the `guardian run` process (utime+stime from /proc) during the writes, and idle for
   ``--idle`` seconds afterwards; as a share of one core.
4. Disk for 24 h: measured per-snapshot manifest bytes and per-write blob bytes from the run, times
   what retention keeps over 24 h at this rate (retention planned over a simulated clock with the
   real ``plan_retention``: every snapshot of the last hour, then one per hour). Baseline: the store.
5. `guardian exec -- /bin/true` on the unchanged store: with the sidecar running (asks it over the
   control socket) and without (pre-flight: a stat walk), median of ``--runs``; baseline /bin/true
   and the floor (Python starting with guardian's CLI module), in wall time and in the CPU time of
   the exec process (CPU time hardly depends on the machine's load, wall time does).
6. How far the counts lag the writes: every 0.5 s during the writes, ``guardian_documents``,
   ``guardian_index_documents`` and /v1/status's document count are read; for each write, the time
   from the writer reporting it to the first sample counting it. p50 / max.

``--from STORE`` starts from a copy (``cp -a``) of an existing store instead of writing one (e.g. a
100k store written by the real chromem, ``chromemh synth``); the writer then writes to its first
collection.

Needs ../shared/chromem-harness/chromemh (skips step 2 without it). Numbers depend on machine load:
the script prints the load average next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import make_store  # noqa: E402
from guardian.format.chromem import collection_dir_name  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402
from guardian.snapshots.repository import Repository  # noqa: E402
from guardian.snapshots.retention import plan_retention  # noqa: E402

CHROMEMH = Path(os.environ.get("GUARDIAN_TEST_SHARED", ROOT.parent / "shared")) / "chromem-harness" / "chromemh"
COLLECTIONS = [f"bench_{i}" for i in range(5)]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def parse_time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def start_guardian(store: Path, state: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    """`guardian run` on ``store`` (no child), its log in ``log``; ``env``: more environment (config)."""
    env = {**os.environ, "GUARDIAN_STATE_DIR": str(state), "GUARDIAN_CONFIG": "/nonexistent.toml", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "guardian", "run", "--store", str(store), "--port", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), cwd=ROOT)


def stop_guardian(guardian: subprocess.Popen) -> None:
    guardian.send_signal(signal.SIGTERM)
    try:
        guardian.wait(120)
    except subprocess.TimeoutExpired:
        guardian.kill()


def wait_started(paths: StatePaths, log: Path, timeout: float = 1800.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    port = None
    while time.monotonic() < deadline:
        if port is None:
            for line in log.read_text(errors="replace").splitlines():
                if '"http_listening"' in line:
                    port = json.loads(line)["port"]
        if port is not None and Repository(paths.snapshots).list_ids():
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status == 200:
                    return
            except OSError:
                pass
        time.sleep(0.5)
    raise SystemExit(f"guardian did not get ready within {timeout}s; see {log}")


def run_writer(store: Path, collection: str, count: int, rate: float, seed: int) -> list[tuple[str, float]]:
    """(store-relative path, wall time the writer reported it) per document written."""
    interval_ms = max(1, round(1000 / rate))
    proc = subprocess.Popen([str(CHROMEMH), "writer", str(store), "0", collection, str(count), str(interval_ms),
                             str(seed)], stdout=subprocess.PIPE)
    folder = collection_dir_name(collection)
    written = []
    for line in proc.stdout:
        data = json.loads(line)
        if "file" in data:
            written.append((f"{folder}/{data['file']}.gob", time.time()))
        elif data.get("ok") is False:
            raise SystemExit(f"writer failed: {data.get('error')}")
    proc.wait()
    return written


def captures(log: Path) -> list[tuple[float, set[str]]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if '"snapshot_captured"' not in line:
            continue
        data = json.loads(line)
        found.append((parse_time(data["timestamp"]), set(data.get("paths") or [])))
    return found


def rpo(written: list[tuple[str, float]], captured: list[tuple[float, set[str]]]) -> list[float]:
    latencies = []
    for path, at in written:
        hit = next((when for when, paths in captured if when >= at and path in paths), None)
        latencies.append(float("inf") if hit is None else hit - at)
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def repo_bytes(repo: Repository) -> tuple[int, int]:
    manifests = sum(p.stat().st_size for p in repo.manifests.iterdir())
    everything = sum(p.stat().st_size for p in repo.root.rglob("*") if p.is_file())
    return manifests, everything - manifests  # packs (and any loose blobs of an older layout)


def kept_over_a_day(snapshot_seconds: float, config) -> tuple[int, int]:
    """(snapshots kept after 24 h, of how many taken) at one snapshot every ``snapshot_seconds``."""
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    taken = int(24 * 3600 / snapshot_seconds)
    ids = [(f"s{i:07d}", start + timedelta(seconds=i * snapshot_seconds)) for i in range(taken)]
    keep, _ = plan_retention(ids, config.keep_last, config.keep_hourly, config.keep_daily, config.keep_weekly,
                             timedelta(minutes=config.keep_within_minutes))
    return len(keep), taken


def exec_seconds(store: Path, state: Path, runs: int) -> tuple[float, float]:
    env = {**os.environ, "GUARDIAN_STATE_DIR": str(state), "GUARDIAN_CONFIG": "/nonexistent.toml"}
    return command_seconds([sys.executable, "-m", "guardian", "exec", "--store", str(store), "--", "/bin/true"],
                           runs, env)


def command_seconds(cmd: list[str], runs: int, env: dict | None = None) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds of the command itself) over ``runs``."""
    import resource

    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def http_port(log: Path) -> int:
    for line in log.read_text(errors="replace").splitlines():
        if '"http_listening"' in line:
            return json.loads(line)["port"]
    raise SystemExit(f"no http_listening in {log}")


def sample_counts(port: int, stop: threading.Event, out: list) -> None:
    """Every 0.5 s: (time, guardian_documents, guardian_index_documents, /v1/status documents)."""
    import urllib.request

    def metric(body: str, name: str) -> float | None:
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    while not stop.wait(0.5):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=10).read())
        except OSError:
            continue
        out.append((time.time(), metric(body, "guardian_documents"), metric(body, "guardian_index_documents"),
                    status.get("store", {}).get("documents")))


def count_lags(written: list[tuple[str, float]], samples: list[tuple], column: int) -> list[float]:
    """Per write k: seconds from the writer reporting it to the first sample counting base + k + 1."""
    if not samples or samples[0][column] is None:
        return []
    base = samples[0][column] - sum(1 for _, at in written if at <= samples[0][0])
    lags = []
    for k, (_, at) in enumerate(written):
        hit = next((when for when, *values in samples
                    if when >= at and values[column - 1] is not None and values[column - 1] >= base + k + 1), None)
        lags.append(float("inf") if hit is None else hit - at)
    return lags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="writes per second")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measurement")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", default="/tmp/bench-live")
    parser.add_argument("--from", dest="source", help="start from a copy of this store (cp -a) instead of writing one")
    args = parser.parse_args()
    from guardian.config import Config

    config = Config()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store, state, log = work / "store", work / "state", work / "run.log"
    began = time.monotonic()
    writer_collection = COLLECTIONS[1]
    if args.source:
        subprocess.run(["cp", "-a", args.source, str(store)], check=True)
        from guardian.store.scan import scan_store

        names = sorted(scan_store(store).loaded_collections().items())
        writer_collection = names[0][0]
        print(f"store: a copy of {args.source}: {sum(n for _, n in names)} documents in {len(names)} collection(s)")
    else:
        make_store(store, args.docs, collections=COLLECTIONS)
        print(f"store: {args.docs} documents in {len(COLLECTIONS)} collections "
              f"({time.monotonic() - began:.1f} s to write)")
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared with other work)")
    paths = StatePaths.for_store(store, state)

    # 5 (part one): exec without a sidecar (pre-flight), after one warm-up that fills the cache
    exec_seconds(store, state, 1)
    without = exec_seconds(store, state, args.runs)

    guardian = start_guardian(store, state, log)
    try:
        began = time.monotonic()
        wait_started(paths, log)
        print(f"guardian run ready (index built, first snapshot committed) in {time.monotonic() - began:.1f} s")
        repo = Repository(paths.snapshots)
        time.sleep(5)
        with_sidecar = exec_seconds(store, state, args.runs)
        baseline = command_seconds(["/bin/true"], args.runs)
        interpreter = command_seconds([sys.executable, "-c", "import guardian.cli"], args.runs)
        print(f"exec -- /bin/true: {without[0]:.3f} s without a sidecar (pre-flight), {with_sidecar[0]:.3f} s with "
              f"one (asks it); /bin/true alone {baseline[0]:.3f} s -> overhead {without[0] - baseline[0]:.3f} s / "
              f"{with_sidecar[0] - baseline[0]:.3f} s (median of {args.runs}); of which starting Python with "
              f"guardian's CLI module (the floor): {interpreter[0]:.3f} s")
        print(f"exec above the floor, with a sidecar: {with_sidecar[0] - interpreter[0]:.3f} s wall, "
              f"{with_sidecar[1] - interpreter[1]:.3f} s CPU of the exec process (CPU: floor {interpreter[1]:.3f} s, "
              f"exec {with_sidecar[1]:.3f} s with a sidecar, {without[1]:.3f} s without)")

        if not CHROMEMH.exists():
            print(f"no chromem harness at {CHROMEMH}: RPO/CPU under load skipped")
            return 0
        manifests0, blobs0 = repo_bytes(repo)
        ids0 = len(repo.list_ids())
        samples: list = []
        sampling = threading.Event()
        sampler = threading.Thread(target=sample_counts, args=(http_port(log), sampling, samples), daemon=True)
        sampler.start()
        cpu0, wall0 = cpu_seconds(guardian.pid), time.monotonic()
        written = run_writer(store, writer_collection, args.writes, args.rate, seed=7)
        write_seconds = time.monotonic() - wall0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(x == float("inf") for x in rpo(written, captures(log))):
            time.sleep(0.5)
        cpu1, wall1 = cpu_seconds(guardian.pid), time.monotonic()
        time.sleep(5)   # the counts' last samples
        sampling.set()
        sampler.join()
        latencies = rpo(written, captures(log))
        missed = sum(1 for x in latencies if x == float("inf"))
        done = [x for x in latencies if x != float("inf")]
        print(f"writes: {len(written)} at {args.rate:g}/s over {write_seconds:.1f} s (writer interval "
              f"{1 / args.rate:.3f} s = the baseline)")
        print(f"RPO (write -> committed snapshot): p50 {percentile(done, 0.5):.2f} s, "
              f"p99 {percentile(done, 0.99):.2f} s, max {max(done):.2f} s; {missed} never captured")
        print(f"CPU of guardian run under load: {100 * (cpu1 - cpu0) / (wall1 - wall0):.1f}% of one core "
              f"({cpu1 - cpu0:.2f} s CPU in {wall1 - wall0:.1f} s)")
        for column, what in ((1, "guardian_documents"), (2, "guardian_index_documents"), (3, "/v1/status documents")):
            lags = count_lags(written, samples, column)
            done = [x for x in lags if x != float("inf")]
            if done:
                print(f"{what} lags the writes: p50 {percentile(done, 0.5):.2f} s, max {max(done):.2f} s "
                      f"({len(lags) - len(done)} writes never counted; sampled every 0.5 s)")
            else:
                print(f"{what}: no samples")
        time.sleep(3)
        cpu2, wall2 = cpu_seconds(guardian.pid), time.monotonic()
        time.sleep(args.idle)
        cpu3, wall3 = cpu_seconds(guardian.pid), time.monotonic()
        print(f"CPU idle: {100 * (cpu3 - cpu2) / (wall3 - wall2):.2f}% of one core over {wall3 - wall2:.0f} s")

        manifests1, blobs1 = repo_bytes(repo)
        snapshots = len(repo.list_ids()) - ids0
        forgotten = len(captures(log)) - snapshots
        per_manifest = (manifests1 - manifests0) / max(1, snapshots)
        per_write = (blobs1 - blobs0) / max(1, len(written))
        period = write_seconds / max(1, len(captures(log)))
        kept, taken = kept_over_a_day(period, config)
        store_bytes = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
        day_writes = args.rate * 86400
        day = blobs1 + day_writes * per_write + kept * per_manifest
        print(f"snapshots during the writes: {len(captures(log))} (one per {period:.2f} s), "
              f"{per_manifest / 1024:.1f} KiB per manifest, {per_write / 1024:.2f} KiB of blobs per write"
              f"{f'; {forgotten} already forgotten by retention' if forgotten > 0 else ''}")
        print(f"24 h at {args.rate:g} writes/s (simulated clock): retention keeps {kept} of {taken} snapshots; "
              f"repository ~{day / 2**30:.2f} GiB = today's repository {blobs1 / 2**20:.0f} MiB "
              f"+ {day_writes:.0f} new documents' blobs {day_writes * per_write / 2**30:.2f} GiB "
              f"+ kept manifests {kept * per_manifest / 2**20:.1f} MiB; the store itself grows by the same "
              f"documents (now {store_bytes / 2**20:.0f} MiB)")
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
    finally:
        stop_guardian(guardian)
    return 0


if __name__ == "__main__":
    threading.stack_size(0)
    raise SystemExit(main())
