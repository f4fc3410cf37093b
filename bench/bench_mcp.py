"""`guardian mcp` benchmark: fallback memory_search latency on a big store, relay overhead per message.

Run:  .venv/bin/python bench/bench_mcp.py [--docs 100000] [--work DIR] [--queries 300] [--messages 2000]

1. A contextd-shaped store (collection ``bench_memories``, contextd memory metadata, 384 dims) is
   written once with the format layer's encoder into --work. guardian answers memory_search from
   its index as the fallback does (answers.answer: index freshness check, contextd's query
   embedding with a small test ONNX model in fastembed's layout, tenant filter, over-fetch,
   post-filters, boosts, result shaping). Printed beside: the embedding alone, and the floor
   measured in the same run (one matrix-vector product + argpartition over the same matrix).
2. Relay overhead: round trips of small JSON-RPC requests to a trivial echo child, once
   directly and once through `guardian mcp`; the per-message overhead is the difference of the
   medians (each round trip crosses the relay twice: request and answer).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # as `guardian mcp` runs (guardian/commands/mcp_cmd.py)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guardian.format import chromem  # noqa: E402
from guardian.format.chromem import Document  # noqa: E402
from guardian.index.contextd_embed import ContextdEmbedder, find_contextd_model  # noqa: E402
from guardian.index.store_index import StoreIndex  # noqa: E402
from guardian.mcp import answers  # noqa: E402
from guardian.mcp.answers import Searcher  # noqa: E402
from tests.mcp_relay.conftest import WORDS, write_test_model  # noqa: E402

DIM = 384
PROJECT = "bench"
QUERIES = ["jwt refresh token", "postgres pool exhausted", "flaky test on ci", "react hydration mismatch",
           "release key rotation", "cache invalid after migration"]
ECHO_CHILD = ("import sys\n"
              "out = sys.stdout.buffer\n"
              "for line in sys.stdin.buffer:\n"
              "    i = line.index(b'\"id\":') + 5\n"
              "    j = line.index(b',', i)\n"
              "    out.write(b'{\"jsonrpc\":\"2.0\",\"id\":' + line[i:j] + b',\"result\":{}}\\n')\n"
              "    out.flush()\n")


def percentile(values, p):
    return float(np.percentile(np.asarray(values) * 1000.0, p))


def make_store(root: Path, n_docs: int) -> Path:
    marker = root.with_name(root.name + ".complete")
    if marker.exists():
        return root
    rng = np.random.default_rng(5)
    folder = root / chromem.collection_dir_name(f"{PROJECT}_memories")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / chromem.metadata_file_name(False)).write_bytes(chromem.encode_collection(f"{PROJECT}_memories", {}))
    vectors = rng.standard_normal((n_docs, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i in range(n_docs):
        doc_id = f"00000000-0000-4000-8000-{i:012d}"
        title = f"lesson {i}"
        body = " ".join(rng.choice(WORDS, 12))
        meta = {"id": doc_id, "project_id": PROJECT, "tenant_id": PROJECT, "title": title, "description": body[:60],
                "outcome": "success", "confidence": "0.800000" if i % 10 else "0.500000",
                "state": "archived" if i % 97 == 0 else "active", "usage_count": "0", "tags": "[bench]",
                "created_at": str(1_760_000_000 + i), "updated_at": str(1_760_000_000 + i)}
        path = folder / (chromem.document_stem(doc_id) + ".gob")
        path.write_bytes(chromem.encode_document(Document(doc_id, meta, vectors[i], f"{title}\n\n{body}")))
    marker.write_text("ok")  # beside the store, never inside it
    return root


def bench_fallback(work: Path, n_docs: int, n_queries: int) -> None:
    store = make_store(work / f"store-{n_docs}", n_docs)
    models = work / "models"
    if not (models / "fast-bge-small-en-v1.5" / "model_optimized.onnx").exists():
        write_test_model(models, dim=DIM)
    embedder = ContextdEmbedder(find_contextd_model("BAAI/bge-small-en-v1.5", models))
    started = time.perf_counter()
    searcher = Searcher(StoreIndex(store, cache_dir=work / "cache"), embedder.embed_query)
    searcher.fresh()
    print(f"index ready ({n_docs} docs): {time.perf_counter() - started:.2f} s (cache in {work / 'cache'})")
    for query in QUERIES:  # warm-up: filter cache, onnxruntime first runs
        answers.answer(searcher, "memory_search", {"project_id": PROJECT, "query": query})
    totals, embeds, floors = [], [], []
    matrix = searcher.collection(f"{PROJECT}_memories").rows.matrix
    for i in range(n_queries):
        query = f"{QUERIES[i % len(QUERIES)]} {WORDS[i % len(WORDS)]}"
        t0 = time.perf_counter()
        got = answers.answer(searcher, "memory_search", {"project_id": PROJECT, "query": query, "limit": 5})
        totals.append(time.perf_counter() - t0)
        assert got.structured["count"] == 5
        t0 = time.perf_counter()
        vector = embedder.embed_query(query)
        embeds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scores = matrix @ vector
        np.argpartition(scores, -30)[-30:]
        floors.append(time.perf_counter() - t0)
    print(f"fallback memory_search, {n_docs} docs x {DIM}, {n_queries} queries (incl. embedding):")
    print(f"  p50 {percentile(totals, 50):.2f} ms   p99 {percentile(totals, 99):.2f} ms   (target p50 <= 20 ms)")
    print(f"  embedding a short query alone: p50 {percentile(embeds, 50):.2f} ms")
    print(f"  floor (matrix @ q + argpartition, same matrix): p50 {percentile(floors, 50):.2f} ms")


def round_trips(cmd: list[str], n: int, env: dict) -> list[float]:
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    times = []
    try:
        for i in range(n):
            line = b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % i
            t0 = time.perf_counter()
            proc.stdin.write(line)
            proc.stdin.flush()
            answer = proc.stdout.readline()
            times.append(time.perf_counter() - t0)
            if i == 0:
                assert json.loads(answer)["id"] == 0, answer
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    return times[50:]  # the first round trips include start-up


def bench_relay(work: Path, n: int) -> None:
    child = [sys.executable, "-c", ECHO_CHILD]
    env = dict(os.environ, PYTHONPATH=str(ROOT), GUARDIAN_STATE_DIR=str(work / "state"),
               GUARDIAN_CONFIG=str(work / "none.toml"), EMBEDDINGS_CACHE_DIR=str(work / "no-models"))
    (work / "empty-store").mkdir(exist_ok=True)
    relayed_cmd = [sys.executable, "-m", "guardian", "mcp", "--store", str(work / "empty-store"), "--", *child]
    direct = round_trips(child, n, env)
    relayed = round_trips(relayed_cmd, n, env)
    overhead = (percentile(relayed, 50) - percentile(direct, 50)) / 2
    print(f"relay, {len(direct)} round trips each (request + answer = 2 messages through the relay):")
    print(f"  direct to the child: p50 {percentile(direct, 50):.3f} ms   p99 {percentile(direct, 99):.3f} ms")
    print(f"  through guardian mcp: p50 {percentile(relayed, 50):.3f} ms   p99 {percentile(relayed, 99):.3f} ms")
    print(f"  overhead per message: {overhead:.3f} ms (p50 difference / 2; target <= 0.2 ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--work", default="")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="guardian-bench-mcp-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    bench_relay(work, args.messages)
    bench_fallback(work, args.docs, args.queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
