"""cheroot's connections, made safe against clients that stall, hog connections or send too much.

cheroot (see :mod:`guardian.server.http` for why cheroot) keeps idle connections in a selector
and answers requests from a fixed pool of worker threads that read with blocking reads. What this
module changes, and why:

- **A worker only for a whole request.** The selector thread gathers each request without
  blocking (:class:`guardian.server.intake.Intake`: the head, and the body when it will be read)
  and hands the connection to a worker once it is whole; the worker reads it from memory. A
  client that sends a head and one byte of its body and stalls costs a socket and a few bytes,
  not a worker: queries and health checks are answered meanwhile. A request that does not arrive
  in time (``timeout`` of silence, or ``request_timeout`` from its first byte however it trickles)
  is handed over marked expired, and the worker answers 408 at once.
- **Health checks never wait behind queries.** ``/healthz``, ``/readyz`` and ``/metrics`` are
  answered by a small pool of their own (``health_threads``), so a burst of slow queries on the
  main pool cannot make an orchestrator think the process is dead.
- **One client cannot hold every socket.** Each client address may hold ``per_client``
  connections. A new connection past that closes the client's longest-silent connection that is
  not being served (idle keep-alive, or a request stalled for over a second), so the newest
  connection, often a health probe, gets through; when all of them are busy, it is refused with a
  503 JSON and ``Retry-After``.
- **Buffered bodies have a budget.** Bodies over 1 MiB wait in memory only while the bytes held
  across all connections stay under ``body_budget``; past it a large body is refused with a 503
  (smaller ones are always taken: they are bounded by ``per_client`` x 1 MiB).
- **An error is read before the connection closes.** A connection the server closes after an
  answer (an error, a refused or too large body) is half-closed and drained for a few seconds
  (Apache's "lingering close"), so a client still sending its body reads the 413 instead of a
  reset.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from typing import Callable
from urllib.parse import urlsplit

from cheroot import connections as cheroot_connections
from cheroot import makefile as cheroot_files
from cheroot import server as cheroot
from cheroot.workers import threadpool

from guardian.server.intake import HAND_OVER, READY, WAIT, Head, Intake

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SMALL_BODY = 1024 * 1024
LINGER_SECONDS = 5.0       # how long a closed connection is drained so that the client reads the answer
LINGER_BYTES = 32 * 1024 * 1024
READ_CHUNK = 256 * 1024
READ_PER_TURN = 1024 * 1024  # bytes read from one connection per selector turn (the others get their turn)


def read_now(sock, size: int) -> bytes | None:
    """What the socket holds now, without waiting: None when nothing, b"" at its end (or a reset).

    ``sock.recv`` would not do: on a socket with a timeout Python polls up to the timeout first,
    even with MSG_DONTWAIT. The descriptor itself is non-blocking (that is how the timeout works).
    """
    try:
        return os.read(sock.fileno(), size)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def write_now(sock, data: bytes) -> None:
    """Best effort, without waiting: a small answer to a connection about to be closed."""
    try:
        os.write(sock.fileno(), data)
    except OSError:
        pass


class DeadlineSocketIO(socket.SocketIO):
    """The connection's reads: first what the intake gathered, then the socket, within the deadline.

    Every socket read has the server's timeout, but a client sending one byte every few seconds
    never trips it and would keep a worker for ever; each read here waits at most what is left.
    """

    def __init__(self, sock, conn: "Connection") -> None:
        super().__init__(sock, "rb")
        self._conn = conn

    def readinto(self, buffer) -> int | None:
        intake = self._conn.intake
        served = intake.read_into(buffer)
        if served:
            self._conn.server.budget.release(served)
            return served
        if intake.complete:
            return 0  # the request ends here; the bytes after it are the next request's
        deadline = self._conn.deadline
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")  # cheroot answers 408 (or the gateway does, mid-body)
            self._sock.settimeout(min(self._conn.server.timeout, left))
        return super().readinto(buffer)


class DeadlineReader(cheroot_files.StreamReader):
    def __init__(self, sock, conn: "Connection", bufsize: int) -> None:  # noqa: D107 - see DeadlineSocketIO
        cheroot_files.io.BufferedReader.__init__(self, DeadlineSocketIO(sock, conn), bufsize)
        self.bytes_read = 0

    def take_buffered(self) -> bytes:
        """Bytes read ahead from the intake or the socket and not used: given back to the intake."""
        if not self.has_data():
            return b""
        ahead = self.peek(0)
        return self.read(len(ahead))


class ResponseWriter(cheroot_files.StreamWriter):
    """cheroot's socket writer, able to hold what is written until :meth:`release`.

    cheroot sends a response's head and its body in two sends; each wakes the client, which under
    load costs a scheduling round trip (~0.3 ms on two busy cores). Held, they leave in one send."""

    held = False

    def hold(self) -> None:
        self.held = True

    def release(self) -> None:
        self.held = False
        with self._write_lock:
            self._flush_unlocked()

    def write(self, data, *args, **kwargs):
        if not self.held:
            return super().write(data, *args, **kwargs)
        with self._write_lock:
            self._write_buf.extend(data)
        self.bytes_written += len(data)
        return len(data)


class Connection(cheroot.HTTPConnection):
    """One client connection: its intake, its request deadline, and how it ends."""

    deadline: float | None = None
    lingering: float | None = None  # set while the closed connection is drained: when draining stops
    drained = 0

    def __init__(self, server, sock, makefile=cheroot_files.MakeFile) -> None:
        def files(sock, mode="r", bufsize=cheroot_files.io.DEFAULT_BUFFER_SIZE):
            return DeadlineReader(sock, self, bufsize) if "r" in mode else ResponseWriter(sock, mode, bufsize)

        self.intake = Intake()
        self.counted = False
        self.finished = False
        super().__init__(server, sock, files if makefile is cheroot_files.MakeFile else makefile)

    def communicate(self):
        """One request, read from what the intake gathered; its deadline runs from its first byte."""
        intake = self.intake
        now = time.monotonic()
        self.deadline = now if intake.expired else (intake.started or now) + self.server.request_timeout
        try:
            return super().communicate()
        finally:
            self.end_deadline()
            ahead = self.rfile.take_buffered() if not self.rfile.closed else b""
            intake.next_request()
            intake.put_back(ahead)
            self.server.budget.take(len(ahead))

    def end_deadline(self) -> None:
        self.deadline = None
        try:
            self.socket.settimeout(self.server.timeout)
        except OSError:
            pass  # already closed

    def close(self) -> None:
        """After an answer: half-close and drain for a while, so that a client still sending reads
        the answer instead of a reset; then (or when the server stops) close for good."""
        if self.finished or self.lingering is not None or not self.server.ready:
            self.hard_close()
            return
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            self.hard_close()
            return
        self.rfile.take_buffered()  # read ahead, unread: drained with the rest
        self.server.budget.release(self.intake.held)
        self.intake = Intake()
        self.lingering = time.monotonic() + LINGER_SECONDS
        self.server.put_conn(self)

    def hard_close(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.server.forget(self)
        try:
            super().close()
        except OSError:
            pass


class Connections(cheroot_connections.ConnectionManager):
    """cheroot's selector loop, with the per-client cap at accept and deadlines for gathering requests."""

    def _from_server_socket(self, server_socket):
        conn = super()._from_server_socket(server_socket)
        if conn is None or self.server.admit(conn, self):
            return conn
        return None

    def parked(self) -> list[tuple[int, Connection]]:
        return [(fd, conn) for fd, conn in self._selector.connections if conn is not self.server]

    def evict_for(self, address: str) -> bool:
        """Close ``address``'s longest-silent parked connection (silent over ``evict_after``); True if one was."""
        cutoff = time.time() - self.server.evict_after
        candidates = [(conn.last_used, fd, conn) for fd, conn in self.parked()
                      if conn.remote_addr == address and conn.last_used is not None and conn.last_used <= cutoff]
        if not candidates:
            return False
        _, fd, conn = min(candidates, key=lambda item: item[0])
        self._selector.unregister(fd)
        conn.hard_close()
        return True

    def _expire(self, threshold):
        """Idle connections close after the timeout as before; a request still arriving is handed
        over expired (the worker answers 408); a lingering connection closes when its time is up."""
        now = time.monotonic()
        for fd, conn in self.parked():
            if conn.lingering is not None:
                due = now >= conn.lingering
            elif conn.intake.started is not None:
                due = conn.last_used < threshold or now >= conn.intake.started + self.server.request_timeout
            else:
                due = conn.last_used < threshold
            if not due:
                continue
            self._selector.unregister(fd)
            if conn.lingering is None and conn.intake.started is not None:
                conn.intake.expired = True
                self.server.process_conn(conn)
            else:
                conn.hard_close()


class _PoolSide:
    """The server as a second worker pool's threads see it: cheroot's workers take their work from
    ``server.requests``, so this view points that at the pool; everything else is the server's."""

    def __init__(self, server: "Server") -> None:
        object.__setattr__(self, "_server", server)
        object.__setattr__(self, "requests", None)

    def __getattr__(self, name):
        return getattr(self._server, name)

    def __setattr__(self, name, value):
        if name == "requests":
            object.__setattr__(self, name, value)
        else:
            setattr(self._server, name, value)


class Budget:
    """Bytes the intakes hold, across connections."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> None:
        if count:
            with self._lock:
                self.held += count

    def release(self, count: int) -> None:
        if count:
            with self._lock:
                self.held -= count


class Server(cheroot.HTTPServer):
    """cheroot's server with the changes in the module docstring."""

    ConnectionClass = Connection
    request_timeout = 30.0
    per_client = 512
    evict_after = 1.0  # seconds of silence before a connection may be closed for a newer one of its client
    health_threads = 2
    max_body = 16 * 1024 * 1024
    wants_body: Callable[[Head], bool] = staticmethod(lambda head: True)  # set by the owner: will the API read it?

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.budget = Budget(128 * 1024 * 1024)
        self.refusal_bytes: Callable[[str], bytes] = lambda reason: b""  # a whole 503 answer, set by the owner
        self._clients: dict[str, int] = defaultdict(int)
        self._clients_lock = threading.Lock()
        self.health_requests = None

    def prepare(self):
        super().prepare()
        stock, self._connections = self._connections, Connections(self)
        stock._selector.close()
        side = _PoolSide(self)
        side.requests = threadpool.ThreadPool(side, min=self.health_threads, max=self.health_threads)
        self.health_requests = side.requests
        self.health_requests.start()

    def stop(self):
        super().stop()
        if self.health_requests is not None:
            self.health_requests.stop(self.shutdown_timeout)

    # ------------------------------------------------------------------ clients

    def admit(self, conn: Connection, manager: Connections) -> bool:
        """Count the connection against its client's cap; see the module docstring."""
        address = conn.remote_addr or ""
        with self._clients_lock:
            full = self._clients[address] >= self.per_client
        if full and not manager.evict_for(address):
            write_now(conn.socket, self.refusal_bytes(f"too many connections from {address} "
                                                      f"(at most {self.per_client})"))
            read_now(conn.socket, READ_CHUNK)  # what the client sent already: read, so closing does not reset
            conn.finished = True
            cheroot.HTTPConnection.close(conn)
            return False
        with self._clients_lock:
            self._clients[address] += 1
        conn.counted = True
        return True

    def forget(self, conn: Connection) -> None:
        self.budget.release(conn.intake.held)
        if conn.counted:
            conn.counted = False
            with self._clients_lock:
                self._clients[conn.remote_addr or ""] -= 1
                if self._clients[conn.remote_addr or ""] <= 0:
                    del self._clients[conn.remote_addr or ""]

    # ------------------------------------------------------------------ requests

    def put_conn(self, conn):
        """A connection back from a worker (or lingering): one already holding bytes is looked at now."""
        if self.ready and conn.lingering is None and conn.intake.held:
            self.process_conn(conn)
        else:
            super().put_conn(conn)

    def process_conn(self, conn):
        """Called for a connection with something to read (or expired): gather, then hand over.

        Runs in the selector thread (or a worker handing a keep-alive connection back) and never
        blocks: reads only what the socket holds now. Nothing may escape it: it would end the
        selector loop's turn (or the worker thread) and leak the connection."""
        try:
            self._process(conn)
        except Exception as exc:
            self.error_log(f"closing a connection after an error in the server: {exc!r}", level=logging.ERROR)
            conn.hard_close()

    def _process(self, conn: Connection) -> None:
        if conn.lingering is not None:
            self._drain(conn)
            return
        intake = conn.intake
        ended = False
        if not intake.expired:
            ended = self._gather(conn)
            if intake.started is not None and time.monotonic() >= intake.started + self.request_timeout:
                intake.expired = True
        verdict = HAND_OVER if intake.expired else intake.judge(
            self.wants_body, self.max_request_header_size or 64 * 1024, self.max_body)
        if verdict == WAIT and not ended:
            self._continue(conn)
            if self._over_budget(intake):
                intake.refusal = "the server holds too many large request bodies right now"
                verdict = READY
            else:
                super().put_conn(conn)  # back to the selector until more arrives
                return
        if verdict == WAIT and not intake.held:
            conn.hard_close()  # the client left before sending anything
            return
        head = intake.head
        pool = (self.health_requests if head is not None and urlsplit(head.target).path in HEALTH_PATHS
                else self.requests)
        pool.put(conn)

    def _continue(self, conn: Connection) -> None:
        """A client that asked to be told before it sends its body (``Expect: 100-continue``, as curl
        does past 1 MiB) is told now: its body is wanted, and the worker will not see the request
        before it has arrived. (cheroot says it again when it reads the head; a client reads any
        number of 1xx answers.)"""
        intake = conn.intake
        head = intake.head
        if (head is not None and not intake.continued and intake.request_end is not None
                and head.headers.get("Expect", "").lower() == "100-continue"):
            intake.continued = True
            write_now(conn.socket, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _gather(self, conn: Connection) -> bool:
        """Read what the socket holds now into the intake; True at the end of the stream."""
        intake = conn.intake
        ahead = conn.rfile.take_buffered()
        intake.put_back(ahead)
        self.budget.take(len(ahead))
        taken = 0
        while taken < READ_PER_TURN:
            data = read_now(conn.socket, READ_CHUNK)
            if data is None:
                return False
            if not data:
                return True
            intake.feed(data)
            self.budget.take(len(data))
            taken += len(data)
            if len(data) < READ_CHUNK:
                return False
        return False

    def _over_budget(self, intake: Intake) -> bool:
        head = intake.head
        if head is None or intake.request_end is None or (head.content_length or 0) <= SMALL_BODY:
            return False
        return self.budget.held + (intake.request_end - len(intake.buffer)) > self.budget.limit

    def _drain(self, conn: Connection) -> None:
        """A lingering connection spoke: discard it; at its end (or past the limits) close for good."""
        while True:
            data = read_now(conn.socket, READ_CHUNK)
            if data is None:
                super().put_conn(conn)
                return
            conn.drained += len(data)
            if not data or conn.drained > LINGER_BYTES:
                conn.hard_close()
                return
