"""The HTTP transport: cheroot (CherryPy's server) on 127.0.0.1 serving :class:`Api`.

Used by the sidecar (embedded) and by `guardian serve` (alone)::

    server = GuardianHTTPServer(index, status_provider, config, metrics,
                                health_provider=..., embedder=...)
    server.start()      # binds, serves from background threads; server.port is the bound port (0 -> a free one)
    ...
    server.stop()

Why cheroot and not the standard library's ThreadingHTTPServer (one thread per connection, a
listen backlog of 5, no timeouts): cheroot answers requests from a fixed pool of worker threads
and parks idle keep-alive connections in a selector, so 1,000 idle clients cost 1,000 sockets,
not 1,000 threads; every socket read has a timeout and idle connections are closed after it; the
backlog is ours to set. uvicorn was the other candidate: it needs an asyncio loop plus a thread
pool for the numpy work and has no timeout for a connection that never sends a request; waitress
reads the whole body before the application sees the headers, so a 16 MiB body would be read
before its 401.

Stalled clients (issue 24): cheroot reads a request with blocking reads in a worker, so a client
that stalls mid-body held a worker for its whole read timeout. We kept cheroot and moved the
waiting out of its workers (:mod:`guardian.server.connections`: requests gathered whole in the
selector thread, health endpoints on a pool of their own, a per-client connection cap, a
lingering close) rather than move to an asyncio server: uvicorn would wait on a stalled body
without a thread too, but has no per-client cap, no timeout for a silent connection and no JSON
for its own protocol errors, and the numpy work would still need a thread pool; each of those
would be ours to write on top of it, as the gathering is on top of cheroot.

What this module adds on top of cheroot: the bearer token and the route are checked before a body
is read (:meth:`Api.screen`, also for the gathering: a refused request's body is never waited
for), every error cheroot answers itself (garbage request lines, HTTP/0.9, timeouts, oversized
headers) is a JSON ``{error, hint}`` too, cheroot's log goes to structlog without tracebacks, and
numpy's BLAS runs one thread per query while a server runs (several queries at once on a small
machine otherwise oversubscribe the cores many times over).
"""

from __future__ import annotations

import http
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from cheroot import server as cheroot

from guardian.errors import ConfigError
from guardian.logs import get_logger
from guardian.server.access import COMMON_HEADERS, Access
from guardian.server.api import MAX_BODY, Api, Response, error_response
from guardian.server.connections import Connection, ResponseWriter, Server
from guardian.server.intake import Head
from guardian.server.metrics import Metrics

log = get_logger("guardian.server")


@dataclass(frozen=True)
class ServerLimits:
    """How much of the machine the server may use, and how long it waits for a slow client."""

    threads: int = 8             # worker threads answering requests (queries run on these)
    backlog: int = 1024          # connections the kernel queues before we accept them
    timeout: float = 10.0        # seconds: every socket read, and how long an idle connection is kept
    request_timeout: float = 30.0  # seconds from a request's first byte to its last (a trickle is cut off)
    keep_alive: int = 256        # idle keep-alive connections kept open at most (more: answered, then closed)
    max_header_bytes: int = 64 * 1024
    per_client: int = 512        # connections one client address may hold (see guardian.server.connections)
    evict_after: float = 1.0     # seconds a client's connection must have been silent to make room for its newest
    health_threads: int = 2      # threads answering /healthz, /readyz and /metrics, apart from the queries'
    body_budget: int = 128 * 1024 * 1024  # request-body bytes held in memory across connections (bodies > 1 MiB)


# --------------------------------------------------------------------------- cheroot plumbing


def _error_bytes(message: str, hint: str) -> bytes:
    return (json.dumps({"error": message, "hint": hint}) + "\n").encode("utf-8")


def busy_response(reason: str) -> Response:
    return error_response(503, reason, "retry in a moment", (("Retry-After", "1"),))


def _refusal_bytes(reason: str) -> bytes:
    """A whole 503 answer, written to a connection refused at accept (no request read)."""
    response = busy_response(reason)
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + response.body


PROTOCOL_HINTS = {
    400: "send an HTTP/1.1 request: METHOD /path HTTP/1.1, CRLF line ends, valid headers",
    408: "send the whole request without pausing (the server stops waiting after a timeout)",
    413: "send smaller headers",
    414: "send a shorter request line",
    501: "send the body with a Content-Length (no other transfer coding)",
    505: "use HTTP/1.1",
    503: "retry in a moment",
}


class _Request(cheroot.HTTPRequest):
    """cheroot's request with its own error answers (garbage, timeouts, limits) as JSON."""

    def simple_response(self, status, msg=""):
        code = int(str(status)[:3])
        phrase = str(status)[4:] or http.HTTPStatus(code).phrase
        message = (msg.decode("latin-1") if isinstance(msg, bytes) else str(msg)) or phrase
        body = _error_bytes(message, PROTOCOL_HINTS.get(code, "report this bug"))
        self.close_connection = True  # after a protocol error the rest of the stream cannot be trusted
        head = (f"{self.server.protocol} {code} {phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            self.conn.wfile.write(head.encode("latin-1") + body)
        except OSError:
            pass  # the client is gone


class _Connection(Connection):
    RequestHandlerClass = _Request


class _Gateway(cheroot.Gateway):
    """One request: screen it, read its body (bounded, within the request's deadline), answer it."""

    api: Api  # set on the subclass made per server

    def respond(self) -> None:
        req = self.req
        method = req.method.decode("latin-1")
        target = req.uri.decode("latin-1")
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in req.inheaders.items()}
        refusal = req.conn.intake.refusal
        response = self.api.screen(method, target, headers) if not refusal else busy_response(refusal)
        if response is None:
            body, response = self._read_body(headers) if self.api.wants_body(method, target) else (b"", None)
            if response is None:
                response = self.api.handle(method, target, headers, body)
        self._send(response)

    def _read_body(self, headers: dict[str, str]) -> tuple[bytes, Response | None]:
        req = self.req
        length = headers.get("Content-Length")
        if req.chunked_read or length is None:
            return b"", error_response(411, "Content-Length is required", "send the body with its length")
        size = int(length)  # cheroot refused a non-number already
        if size < 0:
            return b"", error_response(400, "bad Content-Length", "send a number >= 0")
        if size > MAX_BODY:
            return b"", error_response(413, f"request body over {MAX_BODY} bytes", "send fewer vectors per batch")
        try:
            body = req.rfile.read(size)
        except TimeoutError:
            return b"", error_response(408, f"the body did not arrive in time ({req.server.timeout:g} s of silence "
                                       f"or {req.server.request_timeout:g} s in all)",
                                       "send the whole body right after the headers")
        if len(body) < size:
            return b"", error_response(400, f"the body ended after {len(body)} of {size} bytes",
                                       "send as many bytes as Content-Length says")
        return body, None

    def _send(self, response: Response) -> None:
        req = self.req
        req.conn.end_deadline()  # the answer is written with the plain timeout, whatever reading took
        if req.chunked_read or getattr(req.rfile, "remaining", 0):
            req.close_connection = True  # an unread (refused) body: close rather than read it to drain
        req.status = f"{response.status} {http.HTTPStatus(response.status).phrase}".encode("latin-1")
        req.outheaders = [(b"Content-Type", response.content_type.encode("latin-1")),
                          (b"Content-Length", str(len(response.body)).encode("latin-1"))]
        req.outheaders.extend((name.encode("latin-1"), value.encode("latin-1"))
                              for name, value in response.headers + COMMON_HEADERS)
        writer = req.conn.wfile
        held = isinstance(writer, ResponseWriter)
        if held:
            writer.hold()  # the head and the body in one send
        try:
            req.ensure_headers_sent()
            if req.method != b"HEAD":  # HEAD: the headers (with the length) only
                req.write(response.body)
        finally:
            if held:
                writer.release()


class _CherootServer(Server):
    ConnectionClass = _Connection

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        """cheroot's own complaints (client resets, timeouts) as one structlog event, no traceback."""
        (log.error if level >= logging.ERROR else log.debug)("http_server_event", detail=str(msg))


def _prepare_as_daemon(server: _CherootServer) -> None:
    """cheroot's prepare() (bind, listen, start the workers) from a daemon thread.

    Threads inherit daemon-ness from the thread that starts them: started from the main thread,
    cheroot's workers would keep the interpreter alive at exit whenever a stop() was missed.
    """
    failures: list[BaseException] = []

    def prepare() -> None:
        try:
            server.prepare()
        except BaseException as exc:  # re-raised in the caller's thread
            failures.append(exc)

    thread = threading.Thread(target=prepare, name="guardian-http-prepare", daemon=True)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


# --------------------------------------------------------------------------- BLAS threads


class _BlasLimit:
    """One BLAS thread per query while any server runs; the previous setting comes back after the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._limiter = None

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                from threadpoolctl import threadpool_limits

                self._limiter = threadpool_limits(limits=1, user_api="blas")

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None


BLAS_LIMIT = _BlasLimit()


# --------------------------------------------------------------------------- the server


class GuardianHTTPServer:
    """The API served from background threads; bound to config.http_host:config.http_port by start()."""

    def __init__(self, index, status_provider: Callable[[], dict] | None, config,
                 metrics: Metrics | None = None, health_provider: Callable[[], dict] | None = None,
                 ready_provider: Callable[[], tuple[bool, str]] | None = None, embedder: Any = None,
                 limits: ServerLimits | None = None, memories: Any = None, console: Any = None,
                 console_secret: str | None = None) -> None:
        self.metrics = metrics or Metrics()
        self._port: int | None = None
        self.access = Access(config.http_token, config.http_host, lambda: self._port, console_secret)
        self.api = Api(index, status_provider, self.metrics, config.http_token, health_provider,
                       ready_provider, embedder, memories, access=self.access,
                       console=console(self.access) if console is not None else None)
        self.limits = limits or ServerLimits()
        self._address = (config.http_host, config.http_port)
        self._server: _CherootServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._bound()[0]

    @property
    def port(self) -> int:
        return self._bound()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _bound(self) -> tuple[str, int]:
        sock = getattr(self._server, "socket", None)
        return sock.getsockname()[:2] if sock is not None else self._address

    def start(self) -> "GuardianHTTPServer":
        server = self._make_server()
        try:
            _prepare_as_daemon(server)  # binds and listens: errors surface here, in the caller's thread
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self._address[0]}:{self._address[1]}: {exc.strerror or exc}",
                              "pick another http_port (or stop what holds it)") from None
        BLAS_LIMIT.acquire()
        self._server = server
        self._port = self.port
        self._thread = threading.Thread(target=server.serve, name="guardian-http", daemon=True)
        self._thread.start()
        log.info("http_listening", url=self.url, host=self.host, port=self.port)
        return self

    def _make_server(self) -> _CherootServer:
        gateway = type("GuardianGateway", (_Gateway,), {"api": self.api})
        limits = self.limits
        server = _CherootServer(self._address, gateway, minthreads=limits.threads, maxthreads=limits.threads,
                                server_name="guardian")
        server.request_queue_size = limits.backlog
        server.timeout = limits.timeout
        server.request_timeout = max(limits.request_timeout, limits.timeout)
        server.keep_alive_conn_limit = limits.keep_alive
        server.max_request_header_size = limits.max_header_bytes
        server.per_client = limits.per_client
        server.evict_after = limits.evict_after
        server.health_threads = limits.health_threads
        server.budget.limit = limits.body_budget
        server.max_body = MAX_BODY
        server.shutdown_timeout = 5
        server.wants_body = self._wants_body
        server.refusal_bytes = _refusal_bytes
        return server

    def _wants_body(self, head: Head) -> bool:
        """Will the API read this request's body? Not when it refuses the request from its head."""
        return (self.api.screen(head.method, head.target, head.headers) is None
                and self.api.wants_body(head.method, head.target))

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        address = server.socket.getsockname()[:2] if server.socket is not None else self._address
        server.stop()
        self._address = address  # host/port still answer after stop (logs, status)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        BLAS_LIMIT.release()

    def __enter__(self) -> "GuardianHTTPServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

