"""Clients that must not take the HTTP API down (issue 24, item 3), over real sockets on 127.0.0.1:
stalled bodies, health checks behind busy queries, a client holding too many connections, a body
over the limit. Outcomes and orders of events only, never durations: every deadline is far above
what a loaded 2-core box needs."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

from guardian.config import Config
from guardian.index.embed import HttpEmbedder
from guardian.index.store_index import StoreIndex
from guardian.server.connections import ResponseWriter
from guardian.server.http import GuardianHTTPServer, ServerLimits
from tests.conftest import ROOT
from tests.waiting import wait_for, wait_until

QUERY_PATH = "/v1/collections/checkpoints/query"
VECTOR = [0.1] * 384
STALLED_HEAD = f"POST {QUERY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{{".encode()


@pytest.fixture
def index(plain_store):
    return StoreIndex(plain_store).build()


def serve(index, embedder=None, **limits) -> GuardianHTTPServer:
    return GuardianHTTPServer(index, lambda: {"sidecar": {"running": True}}, Config(http_port=0),
                              embedder=embedder, limits=ServerLimits(**limits)).start()


def get(port: int, path: str, timeout: float = 30) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def query(port: int, body: dict, timeout: float = 30) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", QUERY_PATH, json.dumps(body).encode(), {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def unanswered(sock: socket.socket) -> bool:
    """Nothing arrived on the socket yet, and it is still open."""
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False


def guardian_serve(store, state_dir) -> tuple[subprocess.Popen, int, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "guardian", "serve", "--store", str(store), "--port", "0",
                             "--no-watch"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, GUARDIAN_STATE_DIR=str(state_dir)))
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    found = wait_until(lambda: next((re.search(r"127\.0\.0\.1:(\d+)", line) for line in lines if "serving" in line),
                                    None), 60)
    assert found, "".join(lines)[-2000:]
    return proc, int(found.group(1)), lines


def test_stalled_bodies_hold_no_worker(plain_store, state_dir):
    """Twice as many stalled bodies as workers: health checks and queries are answered while every
    one of them still waits (before, each worker waited out its 10 s read timeout in turn)."""
    proc, port, lines = guardian_serve(plain_store, state_dir)
    stalls = []
    try:
        for _ in range(16):  # guardian serve has 8 query workers
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            sock.sendall(STALLED_HEAD)
            stalls.append(sock)
        for _ in range(3):
            assert get(port, "/healthz") == 200
            assert query(port, {"vector": VECTOR, "k": 3}) == 200
        assert all(unanswered(sock) for sock in stalls)  # all still waiting: none was given up on to serve us
    finally:
        for sock in stalls:
            sock.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in "".join(lines)


class GatedEmbeddings:
    """A TEI-style embedding server on 127.0.0.1 that answers only once released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                gate.entered.set()
                gate.release.wait(120)
                body = json.dumps([VECTOR]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_health_endpoints_never_wait_behind_queries(index):
    embeddings = GatedEmbeddings()
    server = serve(index, embedder=HttpEmbedder(embeddings.url, api="tei", timeout=120), threads=1, timeout=30.0)
    outcome: list[int] = []
    try:
        asking = threading.Thread(target=lambda: outcome.append(query(server.port, {"text": "jwt", "k": 1}, 120)))
        asking.start()
        wait_for(embeddings.entered.is_set, 60, what="the query to hold the only query worker")
        for path in ("/healthz", "/readyz", "/metrics"):
            assert get(server.port, path, timeout=20) == 200
        assert outcome == []  # the query still holds its worker: health was answered beside it
        embeddings.release.set()
        asking.join(timeout=120)
        assert outcome == [200]
    finally:
        embeddings.close()
        server.stop()


def test_a_client_over_its_connection_cap_gives_up_its_oldest_silent_one(index):
    server = serve(index, per_client=4, evict_after=0.0)
    try:
        held = [socket.create_connection((server.host, server.port), timeout=30) for _ in range(4)]
        assert get(server.port, "/healthz") == 200  # the fifth: one of the silent four makes room
        closed = wait_for(lambda: [sock for sock in held if not unanswered(sock)], 30, what="one to be closed")
        assert len(closed) == 1 and closed[0].recv(1) == b""
        for sock in held:
            sock.close()
    finally:
        server.stop()


def test_a_client_over_its_connection_cap_with_nothing_to_give_up_gets_503(index):
    server = serve(index, per_client=4, evict_after=600.0)
    try:
        held = [socket.create_connection((server.host, server.port), timeout=30) for _ in range(4)]
        with socket.create_connection((server.host, server.port), timeout=30) as fifth:
            answer = read_all(fifth)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in head, answer[:300]
        refused = json.loads(body)
        assert "too many connections" in refused["error"] and refused["hint"]
        for sock in held:
            assert unanswered(sock)  # the four it holds are untouched
            sock.close()
    finally:
        server.stop()


def test_a_body_over_the_limit_gets_a_readable_413(index):
    server = serve(index, timeout=30.0)
    body = b"[" + b"0," * (8 * 1024 * 1024) + b"0]"  # 16 MiB + 2 bytes
    errors: list[BaseException] = []
    try:
        with socket.create_connection((server.host, server.port), timeout=60) as sock:
            head = f"POST {QUERY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()

            def send() -> None:
                try:
                    sock.sendall(head + body)
                except OSError as exc:
                    errors.append(exc)

            sender = threading.Thread(target=send)
            sender.start()
            answer = read_all(sock)
            sender.join(timeout=60)
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 413 "), answer[:300]
        assert "16777216 bytes" in json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
        assert errors == []  # the whole body went out: drained, not reset
    finally:
        server.stop()


def test_a_client_that_asks_before_sending_its_body_is_told_to_go_on(index):
    server = serve(index, timeout=30.0)
    body = json.dumps({"vector": VECTOR, "k": 1}).encode()
    try:
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            sock.sendall(f"POST {QUERY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                         f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            assert sock.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(body)
            assert b"HTTP/1.1 200 OK" in read_all(sock)
    finally:
        server.stop()


def test_a_response_leaves_in_one_send():
    """The writer holds the head cheroot writes until the body is written too (one wake of the client)."""
    ours, theirs = socket.socketpair()
    try:
        writer = ResponseWriter(ours, "wb")
        theirs.setblocking(False)
        writer.hold()
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        writer.write(b"body")
        with pytest.raises(BlockingIOError):
            theirs.recv(100)  # nothing sent while held
        writer.release()
        theirs.setblocking(True)
        theirs.settimeout(10)
        assert theirs.recv(100) == b"HTTP/1.1 200 OK\r\n\r\nbody"
        assert writer.bytes_written == len(b"HTTP/1.1 200 OK\r\n\r\nbody")
        writer.write(b"later")  # not held: sent at once
        assert theirs.recv(100) == b"later"
    finally:
        ours.close()
        theirs.close()
