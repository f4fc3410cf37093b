"""The HTTP server under load and abuse, over real sockets on 127.0.0.1 (issue 11, items 12-14).

Counts and outcomes only, never durations: every wait is a deadline far above what a loaded
2-core box needs. Latency and throughput figures live in bench/bench_http.py.
"""

from __future__ import annotations

import http.client
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
from guardian.index.store_index import StoreIndex
from guardian.server.http import GuardianHTTPServer, ServerLimits
from tests.conftest import ROOT
from tests.waiting import wait_until

QUERY_PATH = "/v1/collections/checkpoints/query"
VECTOR = [0.1] * 384


@pytest.fixture
def index(plain_store):
    return StoreIndex(plain_store).build()


def serve(index, token: str = "", **limits) -> GuardianHTTPServer:
    return GuardianHTTPServer(index, lambda: {"sidecar": {"running": True}},
                              Config(http_port=0, http_token=token), limits=ServerLimits(**limits)).start()


@pytest.fixture
def server(index):
    server = serve(index, timeout=30.0)  # generous: a client thread may stall for seconds on a loaded box
    yield server
    server.stop()


def raw_exchange(server, data: bytes, timeout: float = 30.0) -> bytes:
    """Send raw bytes, read until the server closes the connection; the whole answer."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def json_error(raw: bytes) -> tuple[int, dict]:
    status, headers, body = parse_answer(raw)
    assert headers["content-type"] == "application/json", raw[:300]
    answer = json.loads(body)
    assert set(answer) == {"error", "hint"} and answer["error"] and answer["hint"], answer
    return status, answer


def query_over(conn: http.client.HTTPConnection, headers: dict | None = None) -> int:
    conn.request("POST", QUERY_PATH, json.dumps({"vector": VECTOR, "k": 3}).encode(),
                 {"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    response.read()
    return response.status


# --------------------------------------------------------------------------- item 12: many connections


def test_200_connections_at_once_all_answered(server):
    outcomes: list[object] = []
    lock = threading.Lock()
    barrier = threading.Barrier(200)

    def one() -> None:
        barrier.wait()
        try:
            conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
            outcome = query_over(conn, {"Connection": "close"})
            conn.close()
        except (OSError, http.client.HTTPException) as exc:
            outcome = repr(exc)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert outcomes == [200] * 200


def test_worker_threads_are_bounded_under_concurrency(index):
    server = serve(index, threads=3)
    try:
        before = threading.active_count()
        seen = []
        stop = threading.Event()

        def client() -> None:
            conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
            for _ in range(20):
                seen.append(query_over(conn))
            conn.close()

        def watch() -> None:
            while not stop.is_set():
                seen.append(("threads", threading.active_count()))
                stop.wait(0.001)

        watcher = threading.Thread(target=watch)
        watcher.start()
        clients = [threading.Thread(target=client) for _ in range(12)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(timeout=120)
        stop.set()
        watcher.join()
        statuses = [s for s in seen if not isinstance(s, tuple)]
        counts = [n for _, n in (s for s in seen if isinstance(s, tuple))]
        assert statuses == [200] * 240
        assert max(counts) <= before + 12 + 1  # our 12 clients and the watcher; the server adds none
    finally:
        server.stop()


def test_blas_runs_one_thread_per_query_while_serving(index):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]

    if not blas_threads():
        pytest.skip("numpy has no BLAS that threadpoolctl can see")
    before = blas_threads()
    server = serve(index)
    try:
        assert blas_threads() == [1] * len(before)
        second = serve(index)
        second.stop()
        assert blas_threads() == [1] * len(before)  # still limited: one server still runs
    finally:
        server.stop()
    assert blas_threads() == before


# --------------------------------------------------------------------------- item 13: slow, idle, refused


def test_idle_connections_make_no_threads_and_are_closed(index):
    server = serve(index, timeout=5.0)
    try:
        before = threading.active_count()
        idle = [socket.create_connection((server.host, server.port), timeout=30) for _ in range(300)]
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        assert query_over(conn) == 200  # answered while 300 connections say nothing
        conn.close()
        assert threading.active_count() <= before
        for sock in idle:
            sock.settimeout(30)
            assert sock.recv(1) == b""  # the server closed it after its idle timeout
            sock.close()
    finally:
        server.stop()


def test_lying_content_length_gets_408_and_frees_the_worker(index):
    server = serve(index, threads=2, timeout=3.0)
    try:
        liars = []
        for _ in range(4):  # twice the worker count
            sock = socket.create_connection((server.host, server.port), timeout=30)
            sock.sendall(f"POST {QUERY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{{\"vec"
                         .encode())
            liars.append(sock)
        for sock in liars:
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            status, answer = json_error(b"".join(chunks))
            assert status == 408 and "body" in answer["error"]
            sock.close()
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        assert query_over(conn) == 200
        conn.close()
    finally:
        server.stop()


def test_half_sent_headers_get_408(index):
    server = serve(index, timeout=3.0)
    try:
        status, answer = json_error(raw_exchange(server, b"POST /v1/collections/checkpoints/query HTTP/1.1\r\nHo"))
        assert status == 408
    finally:
        server.stop()


def test_a_trickling_client_is_cut_off_at_the_request_deadline(index):
    """One byte at a time, each well inside the read timeout: the whole-request deadline still ends it."""
    server = serve(index, threads=1, timeout=5.0, request_timeout=5.0)
    try:
        trickle = f"POST {QUERY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " .encode() + b"a" * 10_000
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            answer = b""
            for byte in trickle:  # at most ~10,000 x 0.1 s, but the server cuts it after 5 s
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                sock.settimeout(0.1)
                try:
                    answer = sock.recv(65536)
                except (TimeoutError, BlockingIOError):
                    continue
                except ConnectionResetError:
                    break
                finally:
                    sock.settimeout(30)
                break
            while chunk := sock.recv(65536):
                answer += chunk
        assert json_error(answer)[0] == 408
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        assert query_over(conn) == 200  # the one worker is free again
        conn.close()
    finally:
        server.stop()


def test_token_is_checked_before_the_body_is_read(index):
    server = serve(index, token="s3cret", timeout=30.0)
    try:
        # 16 MiB announced, nothing sent: the 401 must come without waiting for a byte of it
        head = f"POST {QUERY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {16 * 1024 * 1024}\r\n\r\n".encode()
        status, headers, body = parse_answer(raw_exchange(server, head))
        assert status == 401 and headers["connection"] == "close"
        assert json.loads(body)["hint"]
        head = head.replace(b"Host: x", b"Host: 127.0.0.1\r\nAuthorization: Bearer wrong")
        assert parse_answer(raw_exchange(server, head))[0] == 401
    finally:
        server.stop()


def test_an_unread_body_is_not_drained_when_refused(index):
    server = serve(index, timeout=30.0)
    try:
        # a GET route with a huge announced body: 405/404 answered at once, connection closed
        for path in ("/v1/status", "/nowhere"):
            head = f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n".encode()
            status, headers, _ = parse_answer(raw_exchange(server, head))
            assert status in (404, 405) and headers["connection"] == "close"
    finally:
        server.stop()


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_unsupported_methods_answer_after_the_token_check(index, method):
    server = serve(index, token="s3cret")
    try:
        for path in ("/v1/collections", QUERY_PATH):
            conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
            conn.request(method, path, b"{}")
            response = conn.getresponse()
            assert response.status == 401 and json.loads(response.read())["hint"]
            conn.close()
            conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
            conn.request(method, path, b"{}", {"Authorization": "Bearer s3cret"})
            response = conn.getresponse()
            assert response.status == 405 and response.getheader("Allow") in ("GET", "POST")
            assert set(json.loads(response.read())) == {"error", "hint"}
            conn.close()
    finally:
        server.stop()


def test_body_limit_after_the_token_and_chunked_bodies_refused(index):
    server = serve(index, token="s3cret")
    try:
        head = (f"POST {QUERY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret\r\n"
                f"Content-Length: {64 * 1024 * 1024}\r\n\r\n").encode()
        assert json_error(raw_exchange(server, head))[0] == 413
        chunked = (f"POST {QUERY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n").encode()
        assert json_error(raw_exchange(server, chunked))[0] == 411
    finally:
        server.stop()


def test_head_gets_headers_only(server):
    status, headers, body = parse_answer(raw_exchange(server, b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                              b"Connection: close\r\n\r\n"))
    assert status == 405 and headers["allow"] == "GET" and int(headers["content-length"]) > 0 and body == b""


def test_keep_alive_goes_on_after_a_query(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    for _ in range(5):
        assert query_over(conn) == 200
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Connection") != "close"
    response.read()
    conn.close()


# --------------------------------------------------------------------------- item 14: hostile bodies and lines


def huge_int_vector() -> bytes:
    return b'{"vector": [1' + b"0" * 400 + b"".join(b", 0.1" for _ in range(383)) + b"]}"


def nested_where(depth: int) -> bytes:
    return (b'{"vector": ' + json.dumps(VECTOR).encode() + b', "where": ' + b'{"a": ' * depth + b'"x"'
            + b"}" * depth + b"}")


HOSTILE_BODIES = {
    "huge integer in vector": huge_int_vector(),
    "huge integer in batch": b'{"vectors": [[1' + b"0" * 400 + b"]]}",
    "huge k": b'{"vector": ' + json.dumps(VECTOR).encode() + b', "k": 1' + b"0" * 400 + b"}",
    "integer past Python's digit limit": b'{"vector": [1' + b"0" * 5000 + b"]}",
    "nested lists": b"[" * 100_000,
    "nested objects": b'{"a": ' * 100_000,
    "nested where": nested_where(5000),
    "nested where_document": (b'{"vector": ' + json.dumps(VECTOR).encode() + b', "where_document": '
                              + b'{"$and": [' * 400 + b'{"$contains": "x"}' + b"]}" * 400 + b"}"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_hostile_bodies_are_400_with_error_and_hint(server, name):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    conn.request("POST", QUERY_PATH, HOSTILE_BODIES[name], {"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status == 400, answer
    assert set(answer) == {"error", "hint"} and answer["hint"]
    assert len(answer["error"]) <= 310  # one line, not the whole nested value echoed back
    conn.close()


BAD_LINES = {
    "HTTP/0.9": b"GET /v1/collections\r\n\r\n",
    "no version": b"GET /v1/collections HTTP\r\n\r\n",
    "garbage words": b"hello there, server\r\n\r\n",
    "binary": bytes(range(1, 32)) + b"\r\n\r\n",
    "TLS hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\n\n",
    "header without colon": b"GET /healthz HTTP/1.1\r\nthis is no header\r\n\r\n",
    "bad Content-Length": f"POST {QUERY_PATH} HTTP/1.1\r\nContent-Length: ten\r\n\r\n".encode(),
    "HTTP/2 version": b"GET /healthz HTTP/2.0\r\n\r\n",
    "huge request line": b"GET /" + b"a" * 200_000 + b" HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_garbage_request_lines_are_json_4xx(server, name):
    status, answer = json_error(raw_exchange(server, BAD_LINES[name]))
    assert 400 <= status < 600 and status != 500, (status, answer)
    if name in ("HTTP/0.9", "no version", "garbage words", "binary", "TLS hello", "header without colon"):
        assert status == 400


def test_abuse_leaves_no_traceback_in_a_real_servers_log(plain_store, state_dir):
    proc = subprocess.Popen([sys.executable, "-m", "guardian", "serve", "--store", str(plain_store),
                             "--port", "0", "--no-watch", "--log-level", "debug"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, GUARDIAN_STATE_DIR=str(state_dir)))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: any(re.search(r"on http://127\.0\.0\.1:\d+", line) for line in lines), 60)
        port = int(next(re.search(r"127\.0\.0\.1:(\d+)", line).group(1) for line in lines if "serving" in line))
        target = type("Target", (), {"host": "127.0.0.1", "port": port})()
        for raw in BAD_LINES.values():
            json_error(raw_exchange(target, raw))
        for body in HOSTILE_BODIES.values():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", QUERY_PATH, body)
            assert conn.getresponse().status == 400
            conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    text = "".join(lines)
    assert proc.returncode == 0, text[-2000:]
    assert "Traceback" not in text and "exc_info" not in text and "request failed" not in text, text[-3000:]


# --------------------------------------------------------------------------- start / stop


def test_port_zero_loopback_and_clean_stop(index):
    before = threading.active_count()
    server = serve(index)
    host, port = server.host, server.port
    assert host == "127.0.0.1" and port > 0 and server.url == f"http://127.0.0.1:{port}"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    assert query_over(conn) == 200
    conn.close()
    server.stop()
    server.stop()  # twice is harmless
    assert server.port == port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=10).close()
    assert wait_until(lambda: threading.active_count() <= before, 30)


def test_a_taken_port_is_a_config_error(index, server):
    from guardian.errors import ConfigError

    other = GuardianHTTPServer(index, None, Config(http_port=server.port))
    with pytest.raises(ConfigError) as caught:
        other.start()
    assert "pick another http_port" in caught.value.hint


def test_concurrent_queries_answer_like_sequential_ones(server, queries):
    cases = [c for c in queries["checkpoints"] if set(c["query"]) == {"vector"}]
    expected = [[r["id"] for r in c["top5"]] for c in cases]
    got: dict[int, list] = {}

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
        for i, case in enumerate(cases):
            conn.request("POST", QUERY_PATH, json.dumps(dict(case["query"], k=5)).encode())
            got.setdefault(offset, []).append([r["id"] for r in json.loads(conn.getresponse().read())["results"]])
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(got) == 8 and all(answers == expected for answers in got.values())


def test_a_process_that_never_stops_its_server_still_exits(plain_store):
    script = (
        "import sys; from pathlib import Path; from guardian.config import Config;"
        "from guardian.index.store_index import StoreIndex; from guardian.server.http import GuardianHTTPServer;"
        f"GuardianHTTPServer(StoreIndex(Path({str(plain_store)!r})).build(), None, Config(http_port=0)).start();"
        "print('started')"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "started" in done.stdout, done.stderr[-2000:]
