"""`guardian mcp` in a session's first second: the first memory_search answer while contextd loads, and memory.

Run:  .venv/bin/python bench/bench_mcp_first_second.py [--docs 100000] [--work DIR] [--rounds 20]
                                                     [--sessions 8] [--modes local,sidecar] [--load-seconds S]

1. A contextd-shaped store (bench_mcp.make_store: collection ``bench_memories``, contextd memory
   metadata, 384 dims) and a 384-wide test ONNX model in fastembed's layout. chromem's load time L
   of that store is measured with the real chromem-go (``chromemh bench STORE 0 bench_memories``).
2. CHILD sleeps L before it reads its first line (contextd cannot answer anything before its load
   ends), then answers every request. Its own time to a first memory_search answer (initialize,
   initialized, tools/list, tools/call written at its start) is measured without guardian.
3. Each round starts `guardian mcp -- CHILD` the way a client does (initialize written at once),
   then notifications/initialized, tools/list and memory_search: the time from the initialize to
   the memory_search answer (p50/p99 over --rounds sessions), served by guardian; per mode:
   ``local`` (no sidecar: the session maps the index cache, warmed by one session first) and
   ``sidecar`` (a `guardian run` on the same store answers every session's searches).
4. Memory: the private memory (USS = Private_Clean + Private_Dirty, and Anonymous, from
   /proc/PID/smaps_rollup) of every guardian process (the sessions, their own helpers, the sidecar;
   not the children) with one session, then with --sessions concurrent ones, each after its first
   answer.

The store, cache and state stay in --work for the next run (delete it when done: a 1M store takes
~4 GB and ~1M inodes).
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
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_mcp import PROJECT, make_store  # noqa: E402
from tests.mcp_relay.conftest import FASTEMBED_FOLDER, write_test_model  # noqa: E402

CHROMEMH = ROOT.parent / "shared" / "chromem-harness" / "chromemh"
COLLECTION = f"{PROJECT}_memories"
CHILD = r"""
import json, sys, time
time.sleep(float(sys.argv[1]))  # contextd loads the store before it reads anything
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    message = json.loads(line)
    if "id" not in message or "method" not in message:
        continue
    method = message["method"]
    if method == "initialize":
        result = {"protocolVersion": message["params"].get("protocolVersion"), "capabilities": {"tools": {}},
                  "serverInfo": {"name": "sleeping-child", "version": "0"}}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "child"}], "structuredContent": {"memories": [], "count": 0}}
    else:
        result = {"tools": []} if method == "tools/list" else {}
    out.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode() + b"\n")
    out.flush()
"""
INITIALIZE = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}


def line(request_id, method: str, params: dict | None = None) -> bytes:
    message = {"jsonrpc": "2.0", "method": method}
    if request_id is not None:
        message["id"] = request_id
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


class Client:
    """One MCP session over a process's stdio, the way a client drives it: initialize at once."""

    def __init__(self, cmd: list[str], env: dict, log: Path | None = None) -> None:
        self.started = time.perf_counter()
        stderr = open(log, "ab") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env)
        if log:
            stderr.close()
        self.send(line(1, "initialize", INITIALIZE))

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def answer(self, request_id) -> dict:
        while True:
            raw = self.proc.stdout.readline()
            if not raw:
                raise RuntimeError(f"the session ended before answering request {request_id}")
            message = json.loads(raw)
            if message.get("id") == request_id and "method" not in message:
                return message

    def first_search(self, query: str) -> tuple[float, float, bool]:
        """(seconds to the initialize answer, seconds to the first memory_search answer, guardian's?)"""
        self.answer(1)
        initialized = time.perf_counter() - self.started
        self.send(line(None, "notifications/initialized"))
        self.send(line(2, "tools/list"))
        self.answer(2)
        self.send(line(3, "tools/call", {"name": "memory_search", "arguments": {"project_id": PROJECT,
                                                                                 "query": query}}))
        found = self.answer(3)
        searched = time.perf_counter() - self.started
        return initialized, searched, "io.guardian/fallback" in (found["result"].get("_meta") or {})

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def private_mb(pid: int) -> tuple[float, float]:
    """(USS, Anonymous) of one process in MiB."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for row in handle:
            parts = row.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    return (fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)) / 1024, fields.get("Anonymous", 0) / 1024


def guardian_pids(root: int, child_marker: str) -> list[int]:
    """``root`` and its descendants, without the MCP child (and what it started)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        if child_marker in cmdline and pid != root:
            continue
        found.append(pid)
        todo += [int(c) for c in children]
    return found


def memory_of(pids: list[int]) -> tuple[float, float]:
    uss = anon = 0.0
    for pid in pids:
        try:
            a, b = private_mb(pid)
        except OSError:
            continue
        uss, anon = uss + a, anon + b
    return uss, anon


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def wait_idle(pid: int, window: float = 3.0, busy: float = 0.1) -> None:
    """Until the process used less than ``busy`` of a core over ``window`` seconds."""
    before = cpu_seconds(pid)
    while True:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - before < busy * window:
            return
        before = now


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, p))


def chromem_load_seconds(store: Path) -> float:
    done = subprocess.run([str(CHROMEMH), "bench", str(store), "0", COLLECTION, "3", "5"], capture_output=True,
                          text=True, check=True)
    data = json.loads(done.stdout)
    if not data.get("ok"):
        raise SystemExit(f"chromem could not load {store}: {data.get('error')}")
    print(f"chromem-go v0.7.0 load of the store: {data['load_s']:.2f} s (peak RSS {data['rss_mb']:.0f} MB)")
    return float(data["load_s"])


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.work = Path(args.work or tempfile.mkdtemp(prefix="guardian-bench-first-second-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.store = make_store(self.work / f"store-{args.docs}", args.docs)
        models = self.work / "models"
        if not (models / FASTEMBED_FOLDER / "model_optimized.onnx").exists():
            write_test_model(models, dim=384)
        self.load_seconds = args.load_seconds if args.load_seconds is not None else chromem_load_seconds(self.store)
        self.child_script = self.work / "sleeping_child.py"
        self.child_script.write_text(CHILD)
        self.child = [sys.executable, str(self.child_script), f"{self.load_seconds:.3f}"]
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), GUARDIAN_STATE_DIR=str(self.work / "state"),
                        GUARDIAN_CONFIG=str(self.work / "none.toml"), EMBEDDINGS_CACHE_DIR=str(models),
                        GUARDIAN_MCP_START_TIMEOUT=str(max(60.0, 3 * self.load_seconds + 60)))
        self.env.pop("EMBEDDINGS_MODEL", None)
        self.session_cmd = [sys.executable, "-m", "guardian", "mcp", "--store", str(self.store), "--log-level", "info",
                            "--", *self.child]

    def child_alone(self) -> None:
        client = Client(self.child, self.env)
        try:
            initialized, searched, _ = client.first_search("jwt refresh token")
        finally:
            client.close()
        print(f"CHILD alone (no guardian): first memory_search answer after {searched:.2f} s "
              f"(initialize answered after {initialized:.2f} s)")

    def rounds(self, mode: str) -> None:
        firsts, inits, served = [], [], 0
        for i in range(self.args.rounds):
            client = Client(self.session_cmd, self.env, self.work / "sessions.log")
            try:
                initialized, searched, by_guardian = client.first_search(f"postgres pool exhausted {i}")
            finally:
                client.close()
            firsts.append(searched)
            inits.append(initialized)
            served += by_guardian
        print(f"[{mode}] {self.args.rounds} sessions (load average {os.getloadavg()[0]:.2f}), initialize "
              f"(written at spawn) -> first memory_search answer:")
        print(f"  p50 {pct(firsts, 50):.0f} ms   p99 {pct(firsts, 99):.0f} ms   max {pct(firsts, 100):.0f} ms   "
              f"(served by guardian: {served}/{self.args.rounds}; "
              f"target p99 <= {'300' if self.args.docs <= 100_000 else '2000'} ms)")
        print(f"  of which spawn -> initialize answer: p50 {pct(inits, 50):.0f} ms   p99 {pct(inits, 99):.0f} ms "
              f"(Python start-up, imports, mcp_early_grace)")
        after = [first - init for first, init in zip(firsts, inits)]
        print(f"  initialize answer -> memory_search answer: p50 {pct(after, 50):.0f} ms   "
              f"p99 {pct(after, 99):.0f} ms")

    def memory(self, mode: str, sidecar_pid: int | None) -> None:
        """Sessions' logs go to sessions.log in --work (mcp_fallback_in_sidecar / _in_session says where
        each one's fallback ran)."""
        totals = {}
        for count in (1, self.args.sessions):
            clients = [Client(self.session_cmd, self.env, self.work / "sessions.log") for _ in range(count)]
            try:
                for i, client in enumerate(clients):
                    client.first_search(f"flaky test on ci {i}")
                time.sleep(1.0)
                pids = [pid for client in clients for pid in guardian_pids(client.proc.pid, str(self.child_script))]
                sessions = memory_of(pids)
                side = memory_of(guardian_pids(sidecar_pid, str(self.child_script))) if sidecar_pid else (0.0, 0.0)
            finally:
                for client in clients:
                    client.close()
            totals[count] = (sessions[0] + side[0], sessions[1] + side[1])
            print(f"[{mode}] {count} session(s): USS {sessions[0]:.0f} MiB in sessions"
                  + (f" + {side[0]:.0f} MiB sidecar" if sidecar_pid else "")
                  + f" = {totals[count][0]:.0f} MiB   (anonymous {totals[count][1]:.0f} MiB)")
        one, many = totals[1], totals[self.args.sessions]
        print(f"[{mode}] {self.args.sessions} sessions / 1 session: USS x{many[0] / one[0]:.2f}, "
              f"anonymous x{many[1] / one[1]:.2f} (target <= 1.2)")

    def start_sidecar(self) -> subprocess.Popen:
        from guardian.local.paths import StatePaths
        from guardian.runtime.control import control_request

        log = open(self.work / "sidecar.log", "wb")
        sidecar = subprocess.Popen([sys.executable, "-m", "guardian", "run", "--store", str(self.store),
                                    "--port", "0"], env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        socket = StatePaths.for_store(self.store, self.work / "state").control_socket
        started = time.perf_counter()
        caller = {"model": "BAAI/bge-small-en-v1.5", "models_dir": str(self.work / "models")}
        while True:
            if sidecar.poll() is not None:
                raise SystemExit(f"the sidecar exited ({sidecar.returncode}); see {self.work / 'sidecar.log'}")
            try:
                control_request(socket, "mcp_ready", timeout=600, store=str(self.store), **caller)
                break
            except Exception:
                time.sleep(0.5)
        print(f"sidecar ready to answer sessions after {time.perf_counter() - started:.1f} s (pre-flight, index)")
        wait_idle(sidecar.pid)  # measured in its steady state: after its start-up snapshot of the store
        print(f"sidecar idle (start-up snapshot done) after {time.perf_counter() - started:.1f} s; "
              f"load average {os.getloadavg()[0]:.2f}")
        return sidecar

    def run(self) -> None:
        print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; store {self.store} "
              f"({self.args.docs} docs x 384)")
        self.child_alone()
        modes = self.args.modes.split(",")
        if "local" in modes:
            warm = Client(self.session_cmd, self.env)  # builds and saves the index cache if there is none
            try:
                _, searched, _ = warm.first_search("warm up")
            finally:
                warm.close()
            print(f"[local] first session on this state dir (index cache built if missing): {searched:.2f} s")
            self.rounds("local")
            self.memory("local", None)
        if "sidecar" in modes:
            sidecar = self.start_sidecar()
            try:
                self.rounds("sidecar")
                self.memory("sidecar", sidecar.pid)
            finally:
                sidecar.terminate()
                sidecar.wait(timeout=300)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--modes", default="local,sidecar")
    parser.add_argument("--load-seconds", type=float, default=None, help="CHILD's load time (default: chromem's)")
    parser.add_argument("--work", default="")
    Bench(parser.parse_args()).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
