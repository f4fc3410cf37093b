"""Query and index benchmark on synthetic chromem stores (10k and 100k documents x 384 dims).

Run:  .venv/bin/python bench/bench_query.py [--sizes 10000,100000] [--work DIR] [--queries 300]
      .venv/bin/python bench/bench_query.py --store /tmp/pf/big/plain   # any store, e.g. chromemh synth's

Each store is written once with the format layer's encoder (kept in --work for later runs).
Every figure is printed beside the floor measured in the same run on the same matrix:
``X @ q`` + ``argpartition`` for single queries, ``X @ Q.T`` + argpartition per column for
batches. Reported: cold build, warm restart (cache), in-process and HTTP p50/p99 single-query
latency, batch throughput, RSS. Every path gets its input made before the clock starts, in the form
its caller holds it: the floor a float32 vector, in-process queries a request dict of Python floats,
HTTP queries the request's JSON bytes (sent and answered through http.client). Batches: the median
q/s of 40 interleaved rounds. ``--store PATH`` (comma-separated for several) benchmarks its largest
collection instead of a synthetic store; the store is only read (the index cache goes to --work).
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guardian.config import Config  # noqa: E402
from guardian.format.chromem import (Document, collection_dir_name, document_stem,  # noqa: E402
                                     encode_collection, encode_document)
from guardian.index import query as q  # noqa: E402
from guardian.index.store_index import StoreIndex  # noqa: E402
from guardian.server.http import GuardianHTTPServer  # noqa: E402

DIM = 384
K = 10
BATCH, BATCH_ROUNDS = 64, 40
COLLECTION = "bench_memories"


def write_store(root: Path, n: int, seed: int = 0) -> Path:
    marker = root / ".complete"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    folder = root / collection_dir_name(COLLECTION)
    folder.mkdir(parents=True)
    (folder / "00000000.gob").write_bytes(encode_collection(COLLECTION, {"created_by": "bench"}))
    rng = np.random.default_rng(seed)
    for start in range(0, n, 10_000):
        block = rng.normal(size=(min(10_000, n - start), DIM)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        for offset, vector in enumerate(block):
            i = start + offset
            doc_id = f"doc-{i:07d}"
            doc = Document(doc_id, {"tenant_id": f"t{i % 7}", "type": "memory"}, vector,
                           f"synthetic memory {i}: something worth remembering about topic {i % 97}")
            (folder / (document_stem(doc_id) + ".gob")).write_bytes(encode_document(doc))
    marker.write_text("ok")  # hidden: chromem-like loaders and the index skip it
    return root


def percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.array(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def floor_single(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    scores = matrix @ query
    return np.argpartition(scores, scores.shape[0] - K)[-K:]


def floor_batch(matrix: np.ndarray, batch: np.ndarray) -> None:
    scores = matrix @ batch.T
    for column in range(batch.shape[0]):
        np.argpartition(scores[:, column], scores.shape[0] - K)[-K:]


def batch_throughput(index: StoreIndex, name: str, matrix: np.ndarray, vectors: np.ndarray,
                     size: int = BATCH, rounds: int = BATCH_ROUNDS) -> tuple[float, float]:
    """Median q/s of the floor and of ``index.search`` over ``rounds`` batches of ``size`` queries.

    Each round times the floor and the index on the same batch back to back (which goes first
    alternates), so that load from other processes hits both alike; a round's batch is the next
    ``size`` query vectors. The median of many short rounds, not one total over a few: a burst of
    load moves a round or two, not the figure."""
    floor_rates, index_rates = [], []
    for round_number in range(rounds + 1):
        start = (round_number * size) % max(1, len(vectors) - size + 1)
        batch = vectors[start:start + size]
        as_lists = batch.tolist()
        calls = [(floor_rates, lambda: floor_batch(matrix, batch)),
                 (index_rates, lambda: index.search(name, q.parse_request({"vectors": as_lists, "k": K})))]
        for rates, call in calls if round_number % 2 else reversed(calls):
            started = time.perf_counter()
            call()
            if round_number:  # round 0 warms up
                rates.append(len(batch) / (time.perf_counter() - started))
    return float(np.median(floor_rates)), float(np.median(index_rates))


def rss_mib() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover
        return float("nan")


def bench_size(n: int, work: Path, n_queries: int, store: Path | None = None) -> dict:
    """``store`` None: a synthetic store of ``n`` documents; else that store's largest collection."""
    store = store or write_store(work / f"store-{n}", n)
    cache = work / f"cache-{n}-{abs(hash(str(store))) % 10**8}"
    shutil.rmtree(cache, ignore_errors=True)
    gc.collect()
    started = time.perf_counter()
    index = StoreIndex(store, compress=None, cache_dir=cache).build()
    cold = time.perf_counter() - started
    index.save_cache()
    del index
    gc.collect()
    started = time.perf_counter()
    index = StoreIndex(store, compress=None, cache_dir=cache).build()
    warm = time.perf_counter() - started
    assert index.cached_collections >= 1
    name = max(index.collections().items(), key=lambda item: item[1].indexed)[0]
    collection = index.collection(name)
    matrix = collection.rows.matrix
    n = matrix.shape[0]
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(n_queries, matrix.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vector_lists = [v.tolist() for v in vectors]
    bodies = [json.dumps({"vector": v, "k": K}).encode() for v in vector_lists]  # a client's own work, untimed

    server = GuardianHTTPServer(index, None, Config(http_port=0)).start()
    conn = http.client.HTTPConnection(server.host, server.port)
    path = f"/v1/collections/{urllib.parse.quote(name)}/query"

    def over_http(request_body: bytes) -> None:
        conn.request("POST", path, request_body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body

    # interleaved, so that load from other processes hits the floor and our paths alike
    floor, inproc, http_samples = [], [], []
    for i, (vector, as_list, request_body) in enumerate(zip(vectors, vector_lists, bodies)):
        for samples, call in ((floor, lambda: floor_single(matrix, vector)),
                              (inproc, lambda: index.search(name, q.parse_request({"vector": as_list, "k": K}))),
                              (http_samples, lambda: over_http(request_body))):
            started = time.perf_counter()
            call()
            if i >= 10:  # warm-up
                samples.append(time.perf_counter() - started)
    # again without HTTP in between (the server idle): the server's threads finishing a request hold
    # the GIL at times while the next in-process query runs, which shows in the p99 above
    quiet_floor, quiet_inproc = [], []
    for i, (vector, as_list) in enumerate(zip(vectors, vector_lists)):
        for samples, call in ((quiet_floor, lambda: floor_single(matrix, vector)),
                              (quiet_inproc, lambda: index.search(name, q.parse_request({"vector": as_list, "k": K})))):
            started = time.perf_counter()
            call()
            if i >= 10:
                samples.append(time.perf_counter() - started)
    conn.close()
    server.stop()

    floor_batch_qps, batch_qps = batch_throughput(index, name, matrix, vectors)

    return {"n": n, "dim": matrix.shape[1], "store": str(store), "cold_build_s": cold, "warm_restart_s": warm,
            "floor": percentiles(floor),
            "inproc": percentiles(inproc), "http": percentiles(http_samples),
            "quiet_floor": percentiles(quiet_floor), "quiet_inproc": percentiles(quiet_inproc),
            "batch_qps": batch_qps, "floor_batch_qps": floor_batch_qps, "rss_mib": rss_mib()}


def report(result: dict) -> None:
    f50, f99 = result["floor"]
    i50, i99 = result["inproc"]
    h50, h99 = result["http"]
    print(f"\n== {result['n']:,} documents x {result['dim']} ({result['store']}) ==")
    print(f"cold build            {result['cold_build_s']:.2f} s   (real chromem-go load of 100k plain: ~3.2 s)")
    print(f"warm restart (cache)  {result['warm_restart_s']:.3f} s   (target <= 0.5 s)")
    print(f"floor X@q+argpartition p50 {f50:.3f} ms  p99 {f99:.3f} ms")
    print(f"in-process query       p50 {i50:.3f} ms  p99 {i99:.3f} ms   ratio to the floor: p50 {i50 / f50:.2f}x, "
          f"p99 {i99 / f99:.2f}x (target <= 1.25x)")
    print(f"HTTP query             p50 {h50:.3f} ms  p99 {h99:.3f} ms   ratio to the floor: p50 {h50 / f50:.2f}x, "
          f"p99 {h99 / f99:.2f}x; adds {h50 - i50:.3f} ms over in-process (target <= 1 ms)")
    qf50, qf99 = result["quiet_floor"]
    qi50, qi99 = result["quiet_inproc"]
    print(f"in-process, no HTTP between: p50 {qi50:.3f} ms  p99 {qi99:.3f} ms   same-loop floor p50 {qf50:.3f} ms "
          f"p99 {qf99:.3f} ms: ratio p50 {qi50 / qf50:.2f}x, p99 {qi99 / qf99:.2f}x")
    print(f"batch of {BATCH}            {result['batch_qps']:.0f} q/s   floor {result['floor_batch_qps']:.0f} q/s "
          f"(ratio {result['floor_batch_qps'] / result['batch_qps']:.2f}x; "
          f"medians of {BATCH_ROUNDS} interleaved rounds)")
    matrix_mib = result['n'] * result['dim'] * 4 / 2**20
    print(f"RSS                    {result['rss_mib']:.0f} MiB (matrix {matrix_mib:.0f} MiB)")
    print(f"| {result['n']:,} | {f50:.3f} / {f99:.3f} | {i50:.3f} / {i99:.3f} | {i50 / f50:.2f}x / {i99 / f99:.2f}x "
          f"| {h50:.3f} / {h99:.3f} | {h50 / f50:.2f}x / {h99 / f99:.2f}x |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "guardian-bench-query"))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--store", help="existing store(s), comma-separated, instead of synthetic ones (only read)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"cores: {len(os.sched_getaffinity(0))}, numpy {np.__version__}, work dir {work}")
    print("table row: | docs | floor p50 / p99 ms | in-process p50 / p99 ms | ratio | HTTP p50 / p99 ms | ratio |")
    if args.store:
        for store in args.store.split(","):
            report(bench_size(0, work, args.queries, Path(store).expanduser().resolve()))
        return 0
    for size in (int(s) for s in args.sizes.split(",")):
        report(bench_size(size, work, args.queries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
