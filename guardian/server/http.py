"""The HTTP transport: a standard-library ThreadingHTTPServer on 127.0.0.1 serving :class:`Api`.

Used by the sidecar (embedded) and by `guardian serve` (alone)::

    server = GuardianHTTPServer(index, status_provider, config, metrics,
                                health_provider=..., embedder=...)
    server.start()      # serves in a daemon thread; server.port is the bound port (0 -> a free one)
    ...
    server.stop()
"""

from __future__ import annotations

import http.server
import socket
import threading
from typing import Any, Callable

from guardian.errors import ConfigError
from guardian.logs import get_logger
from guardian.server.api import MAX_BODY, Api, Response, error_response
from guardian.server.metrics import Metrics

log = get_logger("guardian.server")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "guardian"
    api: Api  # set on the subclass made per server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle/delayed-ACK stalls

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._answer(b"")

    def do_POST(self) -> None:  # noqa: N802
        length = self.headers.get("Content-Length")
        if length is None:
            self._send(error_response(411, "Content-Length is required", "send the body with its length"))
            return
        try:
            size = int(length)
        except ValueError:
            self._send(error_response(400, "bad Content-Length", "send a number"))
            return
        if size < 0 or size > MAX_BODY:
            self.close_connection = True
            self._send(error_response(413, f"request body over {MAX_BODY} bytes", "send fewer vectors per batch"))
            return
        self._answer(self.rfile.read(size))

    def do_PUT(self) -> None:  # noqa: N802
        self._send(error_response(405, "method not allowed", "use GET or POST"))

    do_DELETE = do_PATCH = do_PUT

    def _answer(self, body: bytes) -> None:
        self._send(self.api.handle(self.command, self.path, self.headers, body))

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n" + response.body)  # headers and body in one write
        self.flush_headers()

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("http", request=fmt % args)


class GuardianHTTPServer:
    """The API served from a background thread; bound to config.http_host:config.http_port."""

    def __init__(self, index, status_provider: Callable[[], dict] | None, config,
                 metrics: Metrics | None = None, health_provider: Callable[[], dict] | None = None,
                 ready_provider: Callable[[], tuple[bool, str]] | None = None, embedder: Any = None) -> None:
        self.metrics = metrics or Metrics()
        self.api = Api(index, status_provider, self.metrics, config.http_token, health_provider,
                       ready_provider, embedder)
        handler = type("GuardianHandler", (_Handler,), {"api": self.api})
        try:
            self.httpd = http.server.ThreadingHTTPServer((config.http_host, config.http_port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {config.http_host}:{config.http_port}: {exc.strerror or exc}",
                              "pick another http_port (or stop what holds it)") from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self.httpd.server_address[0]

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "GuardianHTTPServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        name="guardian-http", daemon=True)
        self._thread.start()
        log.info("http api listening", url=self.url)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> "GuardianHTTPServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
