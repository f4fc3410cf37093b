"""How the relay reaches its fallback MCP server: the sidecar's, or one in this process.

The fallback server (:class:`guardian.mcp.fallback.FallbackServer`) stands on the ``mcp`` SDK, and
importing the SDK takes one to two seconds on a busy machine and ~40 MiB of private memory: too
slow for a session's first second, too big for eight sessions. So when a `guardian run` sidecar
guards the store, the session's fallback runs *in the sidecar* (one SDK server per session there,
over a stream on the control socket: ``mcp_fallback``), next to its index and contextd's model, and
the session itself imports neither the SDK nor numpy. Without a sidecar (or when its stream
breaks) the session makes its own server (the SDK is imported in the background from the
session's start).

:class:`FallbackLink` is what the relay holds: ``serve``, ``submit``, ``answers``, ``close``, as the
server's. It keeps the client's ``initialize`` and every request not answered yet, so that when
the sidecar's stream breaks mid-session the session's own server takes over: primed with the
client's ``initialize`` (under :data:`PRIME_ID`, its answer dropped by the relay) and given the
open requests again. No request goes unanswered.

On the stream, each line the session writes is ``{"phase": "starting"|"down", "reason": text,
"message": a JSON-RPC message}`` (what contextd is doing, for the answers' notes); each line the
sidecar writes is one message of the server, as the server wrote it.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, AsyncIterator, Callable, Protocol

import anyio
import orjson

from guardian.logs import get_logger
from guardian.mcp import wire

PRIME_ID = "io.guardian/fallback-prime"
STARTING, DOWN = "starting", "down"  # what contextd is doing while the fallback answers
STREAM_LIMIT = 64 * 1024 * 1024  # bytes of one line either way (an answer quotes whole documents)
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
log = get_logger("guardian.mcp")


def prime_messages(initialize: dict) -> list[dict]:
    """The client's own initialize (under guardian's id) and the initialized notification."""
    request = {"jsonrpc": "2.0", "id": PRIME_ID, "method": "initialize", "params": initialize.get("params") or {}}
    return [request, dict(INITIALIZED)]


def one_line(value: Any) -> str:
    return " ".join(str(value).split())[:300]


class Server(Protocol):
    async def serve(self) -> None: ...

    async def submit(self, message: dict) -> None: ...

    def answers(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class Stream(Protocol):
    """A connected fallback stream to the sidecar (blocking calls; the link runs them in threads)."""

    def send(self, data: bytes) -> None: ...

    def receive(self) -> bytes: ...

    def close(self) -> None: ...


class FallbackLink:
    """The relay's fallback server: the sidecar's over a stream when ``open_stream`` gives one, else
    ``make_server()`` (the session's own; called in a thread: it imports the SDK). ``phase`` and
    ``reason`` are the relay's, sent along with every message."""

    def __init__(self, make_server: Callable[[], Server], open_stream: Callable[[], Stream | None] | None,
                 phase: Callable[[], str], reason: Callable[[], str]) -> None:
        self.make_server = make_server
        self.open_stream = open_stream
        self.phase, self.reason = phase, reason
        self.stream: Stream | None = None
        self.server: Server | None = None
        self.where = ""  # "sidecar" or "session" once decided
        self._decided = anyio.Event()
        self._closed = anyio.Event()
        self._send_lock = anyio.Lock()
        self._out, self._in = anyio.create_memory_object_stream[bytes](10_000)
        self._initialize: dict | None = None  # the last initialize submitted (the client's, or a prime)
        self._initialize_answered = False
        self._open: dict[str, dict] = {}  # id -> request submitted and not answered yet, in order
        self._group: anyio.abc.TaskGroup | None = None

    # ------------------------------------------------------------------ the relay's side

    async def serve(self) -> None:
        async with anyio.create_task_group() as group:
            self._group = group
            stream, why = await anyio.to_thread.run_sync(self._try_stream)
            if stream is not None:
                self.stream, self.where = stream, "sidecar"
                log.info("mcp_fallback_in_sidecar")
                group.start_soon(self._read_stream, stream)
            else:
                log.info("mcp_fallback_in_session", reason=why)
                await self._start_server()
            self._decided.set()
            await self._closed.wait()
            group.cancel_scope.cancel()

    async def submit(self, message: dict) -> None:
        await self._decided.wait()
        async with self._send_lock:  # also while the session's own server takes over: it gets this one
            self._track(message)
            stream = self.stream
            if stream is None:
                await self.server.submit(message)
                return
            envelope = {"phase": self.phase(), "reason": self.reason(), "message": message}
            try:
                data = orjson.dumps(envelope) + b"\n"
            except (TypeError, orjson.JSONEncodeError):  # a lone surrogate in the message: json writes it
                data = wire.encode(envelope)
            try:
                await anyio.to_thread.run_sync(stream.send, data)
            except OSError as exc:  # the session's own server is given every open request, this one too
                await self._stream_lost(stream, f"cannot write to the sidecar: {exc.strerror or exc}")

    async def answers(self):
        async for line in self._in:
            yield line

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()
        self._closed.set()

    # ------------------------------------------------------------------ bookkeeping

    def _track(self, message: dict) -> None:
        if message.get("method") == "initialize" and "id" in message:
            self._initialize, self._initialize_answered = message, False
        if wire.is_request(message):
            self._open[wire.id_key(message["id"])] = message

    async def _answered(self, line: bytes) -> None:
        """One line of the server's, to the relay; the request it answers is no longer open."""
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            message = None
        if isinstance(message, dict) and "method" not in message and message.get("id") is not None:
            request = self._open.pop(wire.id_key(message["id"]), None)
            if request is not None and request is self._initialize and "result" in message:
                self._initialize_answered = True
        await self._out.send(line)

    # ------------------------------------------------------------------ the session's own server

    async def _start_server(self) -> None:
        self.server = await anyio.to_thread.run_sync(self.make_server)
        self.where = "session"
        self._group.start_soon(self.server.serve)
        self._group.start_soon(self._pump_server, self.server)

    async def _pump_server(self, server: Server) -> None:
        async for line in server.answers():
            await self._answered(line)

    # ------------------------------------------------------------------ the sidecar's

    def _try_stream(self) -> tuple[Stream | None, str]:
        """The sidecar's stream, or None and why not."""
        if self.open_stream is None:
            return None, "no sidecar is asked"
        try:
            stream = self.open_stream()
        except Exception as exc:  # an older sidecar, one busy, one for another store: this session's own
            return None, one_line(getattr(exc, "message", None) or exc)
        return stream, "" if stream is not None else "no sidecar runs for this store"

    async def _read_stream(self, stream: Stream) -> None:
        while True:
            try:
                line = await anyio.to_thread.run_sync(stream.receive)
            except OSError as exc:
                line, problem = b"", f"cannot read from the sidecar: {exc.strerror or exc}"
            else:
                problem = "the sidecar closed the stream"
            if not line:
                if self.stream is stream:
                    async with self._send_lock:
                        await self._stream_lost(stream, problem)
                return
            await self._answered(line)

    async def _stream_lost(self, stream: Stream, problem: str) -> None:
        """The sidecar went away mid-session: the session's own server takes over, primed with the
        client's initialize, and is given every request still open (call under ``_send_lock``)."""
        if self.stream is not stream:
            return
        self.stream = None
        stream.close()
        log.warning("mcp_fallback_sidecar_lost", error=problem, open_requests=len(self._open))
        await self._start_server()
        replay = []
        initialize = self._initialize
        if initialize is not None and self._initialize_answered:
            replay += prime_messages(initialize)
        elif initialize is not None:
            replay.append(initialize)
        replay += [request for request in self._open.values() if request is not initialize]
        for message in replay:
            self._track(message)
            await self.server.submit(message)


class SocketStream:
    """A fallback stream on the sidecar's control socket (``mcp_fallback``): the request line, the
    sidecar's ``{"ok": true}`` line, then messages both ways until either side closes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self._closed = threading.Event()

    @classmethod
    def open(cls, connect: Callable[[], socket.socket], request: bytes, timeout: float) -> "SocketStream":
        sock = connect()
        try:
            sock.settimeout(timeout)
            sock.sendall(request)
            stream = cls(sock)
            answer = stream.reader.readline(STREAM_LIMIT)
            reply = orjson.loads(answer) if answer else {}
            if not isinstance(reply, dict) or reply.get("ok") is not True:
                error = reply.get("error") if isinstance(reply, dict) else None
                raise ConnectionError(error or "the sidecar refused the fallback stream")
            sock.settimeout(None)
            return stream
        except BaseException:
            sock.close()
            raise

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> bytes:
        if self._closed.is_set():
            return b""
        line = self.reader.readline(STREAM_LIMIT)
        return line if line.endswith(b"\n") else b""  # a cut line is the end of the stream

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
