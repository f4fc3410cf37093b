"""HTTP under load: `guardian serve` in its own process on a synthetic store, driven from here.

Run:  .venv/bin/python bench/bench_http.py [--docs 20000] [--queries 400] [--work DIR]

Every figure is printed beside the sequential baseline measured in the same run against the same
server (one client, one keep-alive connection):

- 8 concurrent query clients (one keep-alive connection each): p50/p99 and q/s, ratio to the
  sequential p99 (target <= 10x) and to the sequential q/s (target >= 1x);
- 200 connections opened at once, one query each: resets/refusals/timeouts (target 0), p50/p99;
- /v1/status one at a time and 8 at once;
- 1,000 idle connections: the server's thread count before and while they are open, and whether a
  query is still answered while they idle.

The server runs in a child process so that the clients' own Python work does not share its GIL.
The machine is shared: read the ratios, not the absolute milliseconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_store  # noqa: E402

COLLECTION = "bench"
DIM = 384
K = 10
ROOT = Path(__file__).resolve().parent.parent


def start_server(store: Path, state: Path, root: Path = ROOT) -> tuple[subprocess.Popen, int]:
    """`guardian serve` from the checkout at ``root`` (this one unless told: another one's code can be measured)."""
    env = dict(os.environ, GUARDIAN_LOG_LEVEL="warning", PYTHONPATH=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "guardian", "serve", "--store", str(store), "--state-dir",
                             str(state), "--port", "0", "--no-watch", "--compress", "false"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        found = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
        if found:
            threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()  # keep the pipe drained
            return proc, int(found.group(1))
    raise SystemExit(f"guardian serve did not start (exit {proc.wait()})")


def query_bodies(n: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [json.dumps({"vector": v.tolist(), "k": K}).encode() for v in vectors]


class Client:
    """One keep-alive connection; ``query`` returns the seconds one answer took."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: bytes | None = None) -> float:
        started = time.perf_counter()
        self.conn.request(method, path, body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {data[:200]!r}")
        return time.perf_counter() - started

    def query(self, body: bytes) -> float:
        return self.call("POST", f"/v1/collections/{COLLECTION}/query", body)

    def close(self) -> None:
        self.conn.close()


def ms(samples: list[float]) -> tuple[float, float]:
    values = np.array(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def sequential(port: int, bodies: list[bytes]) -> dict:
    client = Client(port)
    for body in bodies[:20]:
        client.query(body)  # warm-up
    started = time.perf_counter()
    samples = [client.query(body) for body in bodies]
    elapsed = time.perf_counter() - started
    client.close()
    return {"samples": samples, "qps": len(bodies) / elapsed}


def concurrent(port: int, bodies: list[bytes], clients: int) -> dict:
    samples: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def worker(mine: list[bytes]) -> None:
        client = Client(port)
        client.query(mine[0])
        barrier.wait()
        got = []
        try:
            for body in mine:
                got.append(client.query(body))
        except Exception as exc:  # counted, printed
            errors.append(repr(exc))
        with lock:
            samples.extend(got)
        client.close()

    threads = [threading.Thread(target=worker, args=(bodies[i::clients],)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"samples": samples, "qps": len(samples) / elapsed, "errors": errors}


def burst(port: int, bodies: list[bytes], connections: int) -> dict:
    """``connections`` new connections at once, one query each (Connection: close)."""
    samples: list[float] = []
    failures: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(connections)

    def one(body: bytes) -> None:
        barrier.wait()
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", f"/v1/collections/{COLLECTION}/query", body,
                         {"Content-Type": "application/json", "Connection": "close"})
            response = conn.getresponse()
            response.read()
            conn.close()
            kind = None if response.status == 200 else f"status {response.status}"
        except ConnectionResetError:
            kind = "reset"
        except ConnectionRefusedError:
            kind = "refused"
        except (TimeoutError, socket.timeout):
            kind = "timeout"
        except (OSError, http.client.HTTPException) as exc:
            kind = type(exc).__name__
        with lock:
            if kind is None:
                samples.append(time.perf_counter() - started)
            else:
                failures[kind] = failures.get(kind, 0) + 1

    threads = [threading.Thread(target=one, args=(bodies[i % len(bodies)],)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"samples": samples, "failures": failures}


def status_calls(port: int, parallel: int) -> list[float]:
    samples: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        client = Client(port)
        took = client.call("GET", "/v1/status")
        client.close()
        with lock:
            samples.append(took)

    threads = [threading.Thread(target=one) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def idle_connections(port: int, pid: int, count: int, body: bytes, idle_timeout: float = 10.0) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    before = thread_count(pid)
    sockets = []
    for _ in range(count):
        sockets.append(socket.create_connection(("127.0.0.1", port), timeout=30))
    time.sleep(1.0)  # let the server accept them all
    during = thread_count(pid)
    try:
        client = Client(port)
        took = client.query(body)
        client.close()
        answered = f"yes ({took * 1000:.1f} ms)"
    except Exception as exc:
        answered = f"no ({exc!r})"
    time.sleep(idle_timeout + 2.0)  # past the server's idle timeout: it should have closed them all
    closed_by_server = 0
    for sock in sockets:
        sock.settimeout(0.0)
        try:
            if sock.recv(1) == b"":
                closed_by_server += 1
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed_by_server += 1
        sock.close()
    return {"before": before, "during": during, "answered": answered, "closed_by_server": closed_by_server}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "guardian-bench-http"))
    args = parser.parse_args()
    work = Path(args.work)
    store = work / f"store-{args.docs}"
    if not (work / f"store-{args.docs}.complete").exists():
        make_store(store, args.docs, collections=(COLLECTION,))
        (work / f"store-{args.docs}.complete").write_text("ok")
    print(f"cores: {len(os.sched_getaffinity(0))}, load avg {os.getloadavg()[0]:.2f}, "
          f"{args.docs:,} documents x {DIM}, k={K}")
    proc, port = start_server(store, work / "state")
    try:
        bodies = query_bodies(args.queries)
        ratios = []
        for round_no in range(args.rounds):  # alternated, so that the machine's load hits both alike
            seq = sequential(port, bodies)
            s50, s99 = ms(seq["samples"])
            con = concurrent(port, bodies, args.clients)
            c50, c99 = ms(con["samples"]) if con["samples"] else (float("nan"),) * 2
            ratios.append((c99 / s99, con["qps"] / seq["qps"]))
            print(f"round {round_no + 1}: sequential (1 client)  p50 {s50:7.2f} ms  p99 {s99:7.2f} ms  "
                  f"{seq['qps']:6.0f} q/s")
            print(f"round {round_no + 1}: {args.clients} concurrent clients  p50 {c50:7.2f} ms  p99 {c99:7.2f} ms  "
                  f"{con['qps']:6.0f} q/s  p99 = {c99 / s99:.1f}x sequential, throughput = "
                  f"{con['qps'] / seq['qps']:.2f}x, errors {len(con['errors'])}")
        p99_ratio = float(np.median([r[0] for r in ratios]))
        qps_ratio = float(np.median([r[1] for r in ratios]))
        print(f"median over {args.rounds} rounds: {args.clients}-client p99 = {p99_ratio:.1f}x the sequential p99 "
              f"(target <= 10x), throughput = {qps_ratio:.2f}x the sequential (target >= 1x)")
        for round_no in range(3):
            hit = burst(port, bodies, args.connections)
            b50, b99 = ms(hit["samples"]) if hit["samples"] else (float("nan"),) * 2
            print(f"{args.connections} connections at once #{round_no + 1}  p50 {b50:7.1f} ms  p99 {b99:7.1f} ms  "
                  f"ok {len(hit['samples'])}, failed {sum(hit['failures'].values())} {hit['failures'] or ''}"
                  f" (target 0)")
        one = status_calls(port, 1) + status_calls(port, 1) + status_calls(port, 1)
        eight = status_calls(port, 8)
        print(f"/v1/status one at a time    p50 {ms(one)[0]:7.1f} ms;  8 at once: slowest {max(eight) * 1000:.1f} ms")
        idle = idle_connections(port, proc.pid, args.idle, bodies[0])
        print(f"{args.idle} idle connections       server threads {idle['before']} -> {idle['during']}; "
              f"query answered meanwhile: {idle['answered']}; closed by the server after its idle timeout: "
              f"{idle['closed_by_server']}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
