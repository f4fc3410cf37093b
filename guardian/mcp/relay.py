"""`guardian mcp`: stand between an MCP client and contextd on stdio, and answer when contextd can't.

While the child answers, every line goes through untouched (client -> child stdin, child stdout
-> client) — guardian only reads each line to keep track of: the client's ``initialize`` (kept,
to re-initialize a restarted child and to prime the fallback), requests the child has not
answered yet, and the child's ``tools/list`` answers (learned into the :class:`ToolCatalog`).

When the child cannot be started, exits, or leaves a request unanswered for ``answer_timeout``
seconds while saying nothing at all, guardian kills it (its whole process group), answers the
requests it left open and everything after from :class:`FallbackServer`, and restarts it with
the supervisor's backoff. A restarted child is sent the client's ``initialize`` (guardian's id)
and, once it answers, the client's traffic goes to it again. The client sees one session.

Messages guardian itself sends the child use ids starting ``io.guardian/``; their answers are
consumed here, never forwarded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import selectors
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import anyio

from guardian.logs import get_logger
from guardian.mcp import wire
from guardian.mcp.fallback import PRIME_ID, FallbackServer, prime_messages
from guardian.mcp.tools import ToolCatalog
from guardian.restart import RestartPolicy, backoff_delay

LINE_LIMIT = 64 * 1024 * 1024
GUARDIAN_ID = "io.guardian/"
CHILD, FALLBACK, STARTING = "child", "fallback", "starting"
log = get_logger("guardian.mcp")


@dataclass(frozen=True)
class RelayOptions:
    answer_timeout: float = 30.0
    start_timeout: float = 60.0  # a child that has said nothing yet since it started (loading its model)
    restart: RestartPolicy = field(default_factory=RestartPolicy)  # its backoff spaces the restarts
    stop_timeout: float = 10.0
    check_every: float = 0.2


@dataclass
class Pending:
    method: str
    message: dict
    sent_at: float


@dataclass
class Stats:
    forwarded_to_child: int = 0
    forwarded_to_client: int = 0
    fallback_answers: int = 0
    child_starts: int = 0
    handbacks: int = 0
    outages: list = field(default_factory=list)


def _feed_from_file(fd: int, reader: asyncio.StreamReader, loop) -> None:
    """Read a file the event loop cannot poll in a thread and hand its bytes to the loop's reader;
    a read error (stdin a folder, opened write-only, a device failing) ends the input like EOF."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError as exc:
            log.warning("mcp_client_input_unreadable", error=exc.strerror or str(exc))
            chunk = b""
        if not chunk:
            loop.call_soon_threadsafe(reader.feed_eof)
            return
        loop.call_soon_threadsafe(reader.feed_data, chunk)


def _pollable(fd: int, events: int) -> bool:
    """Can the event loop watch ``fd``? Pipes, sockets and terminals yes; regular files and devices
    such as /dev/null no (epoll refuses them with EPERM, asynchronously, as a traceback and a hang)."""
    selector = selectors.DefaultSelector()
    try:
        selector.register(fd, events)
    except (OSError, ValueError):
        return False
    finally:
        selector.close()
    return True


class _FileWriter:
    """StreamWriter's write/drain for a regular file (blocking writes; a file never blocks long)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    async def drain(self) -> None:
        return None


async def read_lines(reader: asyncio.StreamReader):
    """Each line of a stream with its newline (the last one may have none); a line longer than the
    reader's limit is skipped to its end and given as None. Nothing a peer writes ends the stream
    early: only its end does."""
    while True:
        try:
            yield await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # the end, maybe after a line with no newline
            if exc.partial:
                yield exc.partial
            return
        except asyncio.LimitOverrunError as exc:
            if not await _skip_line(reader, exc.consumed):
                yield None
                return
            yield None


async def _skip_line(reader: asyncio.StreamReader, buffered: int) -> bool:
    """Drop the rest of an overlong line; False when the stream ended inside it."""
    while True:
        await reader.readexactly(buffered)
        try:
            await reader.readuntil(b"\n")
            return True
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError as exc:
            buffered = exc.consumed


def terminated(raw: bytes) -> bytes:
    return raw if raw.endswith(b"\n") else raw + b"\n"


def ours(message: dict) -> bool:
    return isinstance(message.get("id"), str) and message["id"].startswith(GUARDIAN_ID)


class McpRelay:
    """One client session; see the module docstring. ``run`` returns the exit code."""

    def __init__(self, cmd: list[str], options: RelayOptions, catalog: ToolCatalog, fallback: FallbackServer,
                 preflight: Callable[[], Any] = lambda: None, wire_in: int = 0, wire_out: int = 1,
                 env: dict | None = None) -> None:
        self.cmd = cmd
        self.options = options
        self.catalog = catalog
        self.fallback = fallback
        self.preflight = preflight
        self.wire_in, self.wire_out = wire_in, wire_out
        self.env = env
        self.mode = STARTING
        self.reason = "contextd is starting"
        self.child: asyncio.subprocess.Process | None = None
        self.child_generation = 0
        self.pending: dict[str, list[Pending]] = {}  # id -> the client's requests the child has open
        self.initialize: dict | None = None     # the client's initialize request, kept
        self.initialize_answered = False        # the client got an answer to it (from anyone)
        self.client_initialized = False         # the client sent notifications/initialized
        self.fallback_primed = False
        self.queued: list[tuple[bytes, dict | None]] = []
        self.fallback_open = 0  # requests handed to the fallback and not answered yet
        self.last_child_output = time.monotonic()
        self.child_spoke = False  # the current child has written at least one line
        self.stats = Stats()
        self._reinit: dict[str, asyncio.Future] = {}
        self.child_exited: asyncio.Event | None = None  # set once the current child is down and killed
        self._closing = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._sequence = 0

    # ------------------------------------------------------------------ entry

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        reader = await self._open_client_reader(loop)
        self._writer = await self._open_client_writer(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._closing.set)
        async with anyio.create_task_group() as group:
            group.start_soon(self.fallback.serve)
            group.start_soon(self._pump_fallback)
            group.start_soon(self._watch_hangs)
            group.start_soon(self._supervise)
            group.start_soon(self._read_client, reader)
            await self._closing.wait()
            await self._stop_child("guardian is stopping")
            await self.fallback.close()
            group.cancel_scope.cancel()
        return 0

    async def _open_client_reader(self, loop) -> asyncio.StreamReader:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        if not _pollable(self.wire_in, selectors.EVENT_READ):  # `< requests.jsonl`, `</dev/null`: read in a thread
            threading.Thread(target=_feed_from_file, args=(self.wire_in, reader, loop), daemon=True).start()
            return reader
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                     os.fdopen(self.wire_in, "rb", buffering=0, closefd=False))
        return reader

    async def _open_client_writer(self, loop):
        if not _pollable(self.wire_out, selectors.EVENT_WRITE):  # `> answers.jsonl`, `>/dev/null`
            return _FileWriter(self.wire_out)
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(self.wire_out, "wb", buffering=0, closefd=False))
        return asyncio.StreamWriter(transport, protocol, None, loop)

    async def send_client(self, line: bytes) -> None:
        self._writer.write(line)
        await self._writer.drain()

    # ------------------------------------------------------------------ client -> guardian

    async def _read_client(self, reader: asyncio.StreamReader) -> None:
        try:
            async for raw in read_lines(reader):
                await self.from_client(raw)
        except (ConnectionError, OSError):
            pass
        log.info("mcp_client_closed")
        await self._drain()
        self._closing.set()

    async def _drain(self) -> None:
        """The client stopped writing: let the answers it is owed go out first (a bounded wait)."""
        deadline = time.monotonic() + self.options.stop_timeout
        while time.monotonic() < deadline:
            if self.mode != STARTING and not self.queued and not self.pending and self.fallback_open <= 0:
                return
            await asyncio.sleep(0.02)

    async def from_client(self, raw: bytes | None) -> None:
        """One line from the client (None: one over LINE_LIMIT, skipped): a message goes on to
        whoever serves the session; anything else is answered here, as JSON-RPC says, and logged."""
        line = wire.read_line(raw, reserved=GUARDIAN_ID) if raw is not None else wire.overlong(LINE_LIMIT)
        message = line.message
        if message is None:
            await self._refuse_client_line(line)
            return
        if message.get("method") == "initialize" and "id" in message:
            self.initialize = message
        if message.get("method") == "notifications/initialized":
            self.client_initialized = True
        data = terminated(line.raw)
        if self.mode == STARTING:
            self.queued.append((data, message))
        elif self.mode == CHILD:
            await self._to_child(data, message)
        else:
            await self._to_fallback(message)

    async def _refuse_client_line(self, line: wire.Line) -> None:
        if line.blank:
            return
        log.warning("mcp_client_line_refused", problem=line.problem, line=line.excerpt(), answered=bool(line.reply))
        if line.reply:
            await self.send_client(line.reply)

    async def _to_child(self, line: bytes, message: dict) -> None:
        if wire.is_request(message):
            self.pending.setdefault(wire.id_key(message["id"]), []).append(
                Pending(message["method"], message, time.monotonic()))
        child = self.child
        try:
            child.stdin.write(line)
            await child.stdin.drain()
            self.stats.forwarded_to_child += 1
        except (ConnectionError, OSError, AttributeError):
            await self.child_down("contextd's stdin is closed")
            return
        if message.get("method") == "notifications/initialized":
            await self._ask_child_tools()

    def _answered(self, request_id) -> Pending | None:
        """The oldest open request with this id, no longer open; None when none is waiting for it."""
        key = wire.id_key(request_id)
        waiting = self.pending.get(key)
        if not waiting:
            return None
        pending = waiting.pop(0)
        if not waiting:
            del self.pending[key]
        return pending

    def open_requests(self) -> list[Pending]:
        return [pending for waiting in self.pending.values() for pending in waiting]

    async def _to_fallback(self, message: dict) -> None:
        if wire.is_response(message) or ("method" not in message):
            return  # an answer to a request the dead child sent: nobody is waiting for it
        if message.get("method") == "initialize":
            self.fallback_primed = True  # the client's own handshake initializes the fallback
        elif not self.fallback_primed and self.initialize is not None:
            await self._prime_fallback()
        if "id" in message:
            self.fallback_open += 1
        await self.fallback.submit(message)

    async def _prime_fallback(self) -> None:
        self.fallback_primed = True
        for message in prime_messages(self.initialize):
            await self.fallback.submit(message)

    # ------------------------------------------------------------------ guardian -> client

    async def _pump_fallback(self) -> None:
        async for line in self.fallback.answers():
            message = wire.read_line(line).message
            if message is not None and message.get("id") == PRIME_ID:
                continue
            if message is not None and message.get("method") is None and "id" in message:
                self.stats.fallback_answers += 1
                self.fallback_open -= 1
                if self.initialize is not None and message.get("id") == self.initialize.get("id"):
                    self.initialize_answered = True
            await self.send_client(line)

    # ------------------------------------------------------------------ child -> client

    async def _read_child(self, child: asyncio.subprocess.Process, generation: int) -> None:
        try:
            async for raw in read_lines(child.stdout):
                self.last_child_output = time.monotonic()
                self.child_spoke = True
                await self.from_child(raw)
        except (ConnectionError, OSError):
            pass
        if generation == self.child_generation:
            code = await child.wait()
            await self.child_down(f"contextd exited with status {code}")

    async def from_child(self, raw: bytes | None) -> None:
        """One line from the child (None: one over LINE_LIMIT). Only whole JSON-RPC messages reach
        the client, byte for byte; an answer goes out once, to a request still waiting for it."""
        line = wire.read_line(raw) if raw is not None else wire.overlong(LINE_LIMIT)
        message = line.message
        if message is None:
            await self._drop_child_line(line)
            return
        if ours(message):
            self._own_answer(message)
            return
        if self.mode != CHILD:
            return  # a restarted child not handed back yet: nothing it says is for the client
        if wire.is_response(message) and message["id"] is not None:
            pending = self._answered(message["id"])
            if pending is None:
                log.warning("mcp_child_answer_unmatched", id=wire.id_key(message["id"])[:80])
                return
            if pending.method == "initialize" and "result" in message:
                self.initialize_answered = True
            if pending.method == "tools/list" and "result" in message:
                await self._learn_tools(message["result"])
        await self.send_client(terminated(line.raw))
        self.stats.forwarded_to_client += 1

    async def _drop_child_line(self, line: wire.Line) -> None:
        """Not a message: logged, never passed on. When it still names a request the client waits
        for (a response gone wrong), that request gets an error instead of waiting for ever."""
        if line.blank:
            return
        log.warning("mcp_child_line_dropped", problem=line.problem, line=line.excerpt())
        request_id = wire.answered_id(line.value)
        if request_id is None or self.mode != CHILD:
            return
        pending = self._answered(request_id)
        if pending is not None:
            await self.send_client(wire.error_line(
                pending.message["id"], wire.INTERNAL_ERROR,
                f"contextd's answer to this request was not a JSON-RPC message ({line.problem}); guardian dropped it"))

    def _own_answer(self, message: dict) -> None:
        future = self._reinit.pop(message["id"], None)
        if future is not None and not future.done():
            future.set_result(message)
        elif message["id"].startswith(GUARDIAN_ID + "tools") and isinstance(message.get("result"), dict):
            asyncio.get_running_loop().create_task(self._learn_tools(message["result"]))

    async def _learn_tools(self, result: Any) -> None:
        try:
            if await anyio.to_thread.run_sync(self.catalog.learn, result):
                log.info("mcp_tools_learned", tools=sorted(self.catalog.learned))
        except OSError as exc:
            log.warning("mcp_tools_not_saved", error=str(exc))

    async def _ask_child_tools(self) -> None:
        """Ask the child for its tools once the session is up, so the catalog follows its version."""
        self._sequence += 1
        request = {"jsonrpc": "2.0", "id": f"{GUARDIAN_ID}tools-{self._sequence}", "method": "tools/list"}
        await self._write_child(json.dumps(request).encode() + b"\n")

    async def _write_child(self, line: bytes) -> bool:
        try:
            self.child.stdin.write(line)
            await self.child.stdin.drain()
            return True
        except (ConnectionError, OSError, AttributeError):
            return False

    # ------------------------------------------------------------------ outages

    async def child_down(self, reason: str) -> None:
        """The child is gone or hung: answer what it left open from the fallback, then kill it.

        The child is detached first, so nothing more is sent to it while it dies; the supervisor
        learns of it through the child's own ``exited`` event, set once the kill is done.
        """
        child, exited = self.child, self.child_exited
        if child is None and self.mode != STARTING:
            return
        self.child, self.child_exited = None, None
        self.child_generation += 1
        was_serving = self.mode == CHILD
        self.reason = reason
        self.mode = FALLBACK
        for future in self._reinit.values():  # a restart that was being re-initialized died
            if not future.done():
                future.set_result({"error": reason})
        left_open = self.open_requests()
        log.warning("mcp_fallback", reason=reason, open_requests=len(left_open))
        self.stats.outages.append(reason)
        self.pending.clear()
        if was_serving or left_open:
            for pending in sorted(left_open, key=lambda p: p.sent_at):
                await self._to_fallback(pending.message)
        await self._flush_queue()
        await self._kill(child)
        if exited is not None:
            exited.set()

    async def _flush_queue(self) -> None:
        queued, self.queued = self.queued, []
        for line, message in queued:
            if self.mode == CHILD:
                await self._to_child(line, message)
            else:
                await self._to_fallback(message)

    async def _watch_hangs(self) -> None:
        """A request left unanswered past answer_timeout while the child says nothing: it is hung.

        Until the child's first line the longer start_timeout applies: contextd loads its model
        before it answers anything, and a slow start is not a hang.
        """
        while True:
            await asyncio.sleep(self.options.check_every)
            if self.mode != CHILD or not self.pending:
                continue
            timeout = self.options.answer_timeout if self.child_spoke else self.options.start_timeout
            now = time.monotonic()
            oldest = min(p.sent_at for p in self.open_requests())
            if now - oldest > timeout and now - self.last_child_output > timeout:
                await self.child_down(f"contextd did not answer for {timeout:g} s")

    # ------------------------------------------------------------------ the child's life

    async def _supervise(self) -> None:
        """Start the child; after every outage, wait the backoff and start it again."""
        attempt = 0
        while True:
            if attempt:
                policy = self.options.restart
                delay = backoff_delay(attempt, policy.backoff_initial, policy.backoff_max, policy.jitter_fraction)
                log.info("mcp_restart_scheduled", attempt=attempt, seconds=round(delay, 3))
                await asyncio.sleep(delay)
            await anyio.to_thread.run_sync(self._preflight)
            exited = await self._start_and_hand_back()
            if exited is not None:
                attempt = 0
                await exited.wait()
            attempt += 1

    def _preflight(self) -> None:
        try:
            self.preflight()
        except Exception as exc:  # never keep the child from starting: contextd decides
            log.error("mcp_preflight_failed", error=str(exc))

    async def _start_and_hand_back(self) -> asyncio.Event | None:
        """Start the child and give it the session; its ``exited`` event, or None when that failed."""
        child = await self._spawn()
        if child is None:
            if self.mode == STARTING:
                await self.child_down(self.reason)
            return None
        exited = self.child_exited
        if self.initialize is not None and (self.initialize_answered or self.mode == FALLBACK):
            if not await self._reinitialize():
                if self.child is child:  # not already taken down by child_down
                    self.child, self.child_exited = None, None
                    self.child_generation += 1
                    await self._kill(child)
                if self.mode == STARTING:
                    await self.child_down(self.reason)
                return None
        was_fallback = self.mode == FALLBACK
        self.mode = CHILD
        self.last_child_output = time.monotonic()
        if was_fallback:
            self.stats.handbacks += 1
            log.info("mcp_handed_back", generation=self.child_generation)
            if self.client_initialized:
                await self._ask_child_tools()
        await self._flush_queue()
        return exited

    async def _spawn(self) -> asyncio.subprocess.Process | None:
        try:
            child = await asyncio.create_subprocess_exec(
                *self.cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=None, start_new_session=True, limit=LINE_LIMIT, env=self.env)
        except OSError as exc:
            self.reason = f"cannot start {self.cmd[0]!r}: {exc.strerror or exc}"
            log.error("mcp_child_start_failed", error=self.reason)
            return None
        self.child_generation += 1
        self.child = child
        self.child_exited = asyncio.Event()
        self.child_spoke = False
        self.last_child_output = time.monotonic()
        self.stats.child_starts += 1
        log.info("mcp_child_started", pid=child.pid, generation=self.child_generation)
        asyncio.get_running_loop().create_task(self._read_child(child, self.child_generation))
        return child

    async def _reinitialize(self) -> bool:
        """Send the restarted child the client's initialize; True once it answers in time."""
        self._sequence += 1
        request_id = f"{GUARDIAN_ID}reinit-{self._sequence}"
        future = asyncio.get_running_loop().create_future()
        self._reinit[request_id] = future
        request = {"jsonrpc": "2.0", "id": request_id, "method": "initialize",
                   "params": self.initialize.get("params") or {}}
        try:
            line = wire.encode(request)
        except (RecursionError, ValueError):
            self.reason = "the client's initialize nests too deeply to be sent again"
            return False
        if not await self._write_child(line):
            return False
        try:
            answer = await asyncio.wait_for(asyncio.shield(future), self.options.start_timeout)
        except asyncio.TimeoutError:
            self.reason = f"restarted contextd did not answer initialize within {self.options.start_timeout:g} s"
            return False
        finally:
            self._reinit.pop(request_id, None)
        if "result" not in answer:
            self.reason = f"restarted contextd refused initialize: {answer.get('error')}"
            return False
        if self.client_initialized:
            await self._write_child(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        return True

    async def _kill(self, child: asyncio.subprocess.Process | None) -> None:
        """SIGTERM the child's process group, SIGKILL after stop_timeout, and the group's leftovers."""
        if child is None:
            return
        if child.returncode is None:
            try:
                os.killpg(child.pid, signal.SIGTERM)
                await asyncio.wait_for(child.wait(), self.options.stop_timeout)
            except (ProcessLookupError, PermissionError):
                pass
            except asyncio.TimeoutError:
                log.warning("mcp_child_killed", pid=child.pid, after_seconds=self.options.stop_timeout)
        try:
            os.killpg(child.pid, signal.SIGKILL)  # the child if it lingers, and grandchildren left in its group
        except (ProcessLookupError, PermissionError):
            pass
        if child.returncode is None:
            await child.wait()

    async def _stop_child(self, reason: str) -> None:
        """Closing: let the child see EOF on stdin first, then signal its group."""
        child, self.child = self.child, None
        self.child_generation += 1
        if child is None:
            return
        try:
            child.stdin.close()
            await asyncio.wait_for(child.wait(), min(2.0, self.options.stop_timeout))
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass
        await self._kill(child)
        log.info("mcp_child_stopped", reason=reason)
