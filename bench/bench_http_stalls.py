"""HTTP with stalled request bodies: /healthz and query latency while connections stall mid-body.

Run:  .venv/bin/python bench/bench_http_stalls.py [--stalls 8,50,200] [--samples 30] [--docs 20000]
      [--server-root DIR]   (another guardian checkout's `guardian serve`, e.g. the code before a change)

A stalled connection sends a query's head (``Content-Length: 1000``) and one byte of its body,
then nothing: a client that died mid-send, or one that means harm. For each count N, against one
`guardian serve` (its default limits: 8 query workers, 10 s read timeout) on a synthetic store:

- the no-stall baseline, measured in the same run: /healthz and one query each over a fresh
  connection, ``--samples`` times, p50/p99/max;
- the same while N connections stall (all opened first), and how many of the N were still
  waiting, unanswered, when the samples were done (N: none was given up on to serve the others);

printed side by side, with the p99 ratio to the baseline. All traffic stays on 127.0.0.1; every
client read has a 300 s timeout, so the run is bounded even against a server that starves.
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import COLLECTION, DIM, ms, query_bodies, start_server  # noqa: E402
from common import make_store  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUERY_PATH = f"/v1/collections/{COLLECTION}/query"
STALLED_HEAD = f"POST {QUERY_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode()
CLIENT_TIMEOUT = 300.0


def one_call(port: int, method: str, path: str, body: bytes | None = None) -> float:
    """Seconds for one call over a fresh connection (a health probe does not keep connections)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status}")
    finally:
        conn.close()
    return time.perf_counter() - started


def samples(port: int, bodies: list[bytes], count: int) -> dict[str, list[float]]:
    health, queries = [], []
    for i in range(count):
        health.append(one_call(port, "GET", "/healthz"))
        queries.append(one_call(port, "POST", QUERY_PATH, bodies[i % len(bodies)]))
    return {"healthz": health, "query": queries}


def stall(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
        sock.sendall(STALLED_HEAD)
        sockets.append(sock)
    return sockets


def still_waiting(sockets: list[socket.socket]) -> int:
    waiting = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            sock.recv(1)
        except BlockingIOError:
            waiting += 1
        except OSError:
            pass
    return waiting


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--stalls", default="8,50,200")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--server-root", default=str(ROOT))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "guardian-bench-http"))
    args = parser.parse_args()
    counts = [int(n) for n in args.stalls.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, max(counts) + 256)), hard))
    work = Path(args.work)
    store = work / f"store-{args.docs}"
    if not (work / f"store-{args.docs}.complete").exists():
        make_store(store, args.docs, collections=(COLLECTION,))
        (work / f"store-{args.docs}.complete").write_text("ok")
    root = Path(args.server_root).resolve()
    print(f"cores: {len(os.sched_getaffinity(0))}, load avg {os.getloadavg()[0]:.2f}, {args.docs:,} documents x "
          f"{DIM}; guardian serve from {root}; {args.samples} samples of each call, one fresh connection each")
    proc, port = start_server(store, work / "state-stalls", root)
    try:
        bodies = query_bodies(args.samples)
        for body in bodies[:5]:
            one_call(port, "POST", QUERY_PATH, body)  # warm-up
        base = samples(port, bodies, args.samples)
        print(f"{'stalled':>8}  {'/healthz p50':>12} {'p99':>9} {'max':>10} {'p99 x base':>10}  "
              f"{'query p50':>10} {'p99':>9} {'max':>10} {'p99 x base':>10}  stalls still waiting at the end")
        line = "{:>8}  {:>9.1f} ms {:>6.1f} ms {:>7.1f} ms {:>10}  {:>7.1f} ms {:>6.1f} ms {:>7.1f} ms {:>10}  {}"
        h50, h99 = ms(base["healthz"])
        q50, q99 = ms(base["query"])
        print(line.format("none", h50, h99, max(base["healthz"]) * 1000, "1.0x", q50, q99,
                          max(base["query"]) * 1000, "1.0x", "-"))
        for count in counts:
            sockets = stall(port, count)
            try:
                got = samples(port, bodies, args.samples)
                waiting = still_waiting(sockets)
            finally:
                for sock in sockets:
                    sock.close()
            s50, s99 = ms(got["healthz"])
            t50, t99 = ms(got["query"])
            print(line.format(count, s50, s99, max(got["healthz"]) * 1000, f"{s99 / h99:.1f}x", t50, t99,
                              max(got["query"]) * 1000, f"{t99 / q99:.1f}x", f"{waiting} of {count}"))
            time.sleep(1.0)  # let the server see the stalled connections close
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
