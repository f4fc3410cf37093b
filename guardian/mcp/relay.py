"""`guardian mcp`: stand between an MCP client and contextd on stdio, and answer when contextd can't.

While the child answers, every line goes through untouched (client -> child stdin, child stdout
-> client) — guardian only reads each line to keep track of: the client's ``initialize`` (kept,
to re-initialize a restarted child and to prime the fallback), requests the child has not
answered yet, and the child's ``tools/list`` answers (learned into the :class:`ToolCatalog`).

When the child cannot be started, exits, or leaves a request unanswered for ``answer_timeout``
seconds while saying nothing at all, guardian kills it (its whole process group), answers the
requests it left open and everything after from the fallback server (:mod:`guardian.mcp.link`), and restarts it with
the supervisor's backoff. A restarted child is sent the client's ``initialize`` (guardian's id)
and, once it answers, the client's traffic goes to it again. The client sees one session.

While the child starts (it loads the store before its first answer: a minute on a large one),
guardian does not wait with the client (``early``, the default): the client's ``initialize`` goes
to the child at once, and when the child has not answered it within ``early_grace`` seconds,
guardian answers it from the fallback server (:mod:`guardian.mcp.link`), then ``tools/list`` and the read-only search
tools, and keeps every other message for the child (the rules: :mod:`guardian.mcp.early`). When
the child answers the client's ``initialize`` (that answer is guardian's to consume: the client
has one), guardian sends it ``notifications/initialized`` if the client sent one, then the kept
messages in their order, and from then on every line goes to the child; the client gets
``notifications/tools/list_changed`` when contextd's tools differ from the ones guardian listed.
When the child does not come up, the kept messages are answered by the fallback (an error saying
nothing was done, for a write), as after an outage.

Messages guardian itself sends the child use ids starting ``io.guardian/``; their answers are
consumed here, never forwarded. The client's own ids are passed as they are, both ways.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import anyio

from guardian.logs import get_logger
from guardian.mcp import early, stdio, wire
from guardian.mcp.link import DOWN as FALLBACK_DOWN
from guardian.mcp.link import STARTING as FALLBACK_STARTING
from guardian.mcp.link import PRIME_ID, FallbackLink, one_line, prime_messages
from guardian.mcp.tools import ToolCatalog
from guardian.restart import RestartPolicy, backoff_delay

LINE_LIMIT = 64 * 1024 * 1024
GUARDIAN_ID = "io.guardian/"
CHILD, FALLBACK, STARTING = "child", "fallback", "starting"
EARLY = "early"        # the child has not answered the client's initialize yet; guardian serves
HANDOVER = "handover"  # the child answered: the kept messages go to it, new ones queue behind them
TOOLS_CHANGED = b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n'
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
log = get_logger("guardian.mcp")


@dataclass(frozen=True)
class RelayOptions:
    answer_timeout: float = 30.0
    start_timeout: float = 60.0  # a child that has said nothing yet since it started (loading its model)
    restart: RestartPolicy = field(default_factory=RestartPolicy)  # its backoff spaces the restarts
    stop_timeout: float = 10.0
    check_every: float = 0.2
    early: bool = True         # serve the session while the child starts (False: wait for it)
    early_grace: float = 0.05  # seconds the child may take to answer initialize before guardian does


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
    handovers: int = 0  # sessions guardian began while the child started, then gave to it
    outages: list = field(default_factory=list)


def terminated(raw: bytes) -> bytes:
    return raw if raw.endswith(b"\n") else raw + b"\n"


def fallback_phase(down: bool) -> str:
    return FALLBACK_DOWN if down else FALLBACK_STARTING


def tool_signatures(tools: Any) -> list:
    """What the client knows of a tool list: each tool's name, description and input schema."""
    if not isinstance(tools, list):
        return []
    return [(t.get("name"), t.get("description"), json.dumps(t.get("inputSchema"), sort_keys=True))
            for t in tools if isinstance(t, dict)]


def ours(message: dict) -> bool:
    return isinstance(message.get("id"), str) and message["id"].startswith(GUARDIAN_ID)


class McpRelay:
    """One client session; see the module docstring. ``run`` returns the exit code."""

    def __init__(self, cmd: list[str], options: RelayOptions, catalog: ToolCatalog, fallback: FallbackLink,
                 preflight: Callable[[], Any] = lambda: None, wire_in: int = 0, wire_out: int = 1,
                 env: dict | None = None) -> None:
        self.cmd = cmd
        self.options = options
        self.catalog = catalog
        self.fallback = fallback
        self.preflight = preflight
        self.wire_in, self.wire_out = wire_in, wire_out
        self.env = env
        self.mode = EARLY if options.early else STARTING
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
        self.fallback_methods: dict[str, str] = {}  # id -> method of the requests the fallback answers
        self.initialize_line = b""   # the client's initialize as it sent it (for the child, while EARLY)
        self.initialize_sent = -1    # the child generation the client's initialize was written to
        self.owed_initialize: Pending | None = None  # the child's answer to it, the client has guardian's
        self.guardian_began = False  # guardian answered the client's initialize (the child was not up)
        self.told_tools: list | None = None  # the tools guardian listed to the client, until contextd's replace them
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
        reader = await stdio.open_reader(self.wire_in, loop, LINE_LIMIT)
        self._writer = await stdio.open_writer(self.wire_out, loop)
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

    def phase(self) -> str:
        """What contextd is doing while guardian answers: starting (this session has not reached
        it yet) or down (it failed since)."""
        return fallback_phase(self.mode == FALLBACK or (self.mode == CHILD and bool(self.stats.outages)))

    async def send_client(self, line: bytes) -> None:
        self._writer.write(line)
        await self._writer.drain()

    # ------------------------------------------------------------------ client -> guardian

    async def _read_client(self, reader: asyncio.StreamReader) -> None:
        try:
            async for raw in stdio.read_lines(reader):
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
        if message.get("method") == "initialize" and "id" in message and not self.initialize_line:
            self.initialize = message  # (while EARLY, the first one: the one contextd and guardian answer)
        if message.get("method") == "notifications/initialized":
            self.client_initialized = True
        data = terminated(line.raw)
        if self.mode in (STARTING, HANDOVER):
            self.queued.append((data, message))
        elif self.mode == CHILD:
            await self._to_child(data, message)
        elif self.mode == EARLY:
            await self._early(data, message)
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
        elif message.get("method") == "notifications/cancelled":
            self._forget_cancelled(message)
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

    def _forget_cancelled(self, cancel: dict) -> None:
        """The client gave up on a request the child has open: MCP says the child should not answer
        it, so it no longer counts as waiting (a silent child is then not hung); an answer that comes
        anyway matches nothing and is dropped, as the client would drop it."""
        request_id = early.cancelled_id(cancel)
        if request_id is not None and self._answered(request_id) is not None:
            log.info("mcp_request_cancelled", id=wire.id_key(request_id)[:80])

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
            self.fallback_methods[wire.id_key(message["id"])] = message["method"]
        await self.fallback.submit(message)

    async def _prime_fallback(self) -> None:
        self.fallback_primed = True
        for message in prime_messages(self.initialize):
            await self.fallback.submit(message)

    # ------------------------------------------------------------------ while the child starts

    async def _early(self, line: bytes, message: dict) -> None:
        """A client message while the child has not answered initialize (see the module docstring)."""
        if message.get("method") == "initialize" and "id" in message and not self.initialize_line:
            self.initialize_line = line
            await self._send_initialize()
            asyncio.get_running_loop().call_later(
                self.options.early_grace, lambda: asyncio.ensure_future(self._begin_session()))
            return
        if not self.guardian_began:  # nobody answered initialize yet: whoever does will take these
            self.queued.append((line, message))
            return
        route = early.route(message)
        if route == early.KEEP:
            self.queued.append((line, message))
        elif route == early.CANCEL and self._drop_kept(message):
            return
        elif route != early.DROP:
            await self._to_fallback(message)

    def _drop_kept(self, cancel: dict) -> bool:
        """The client cancelled a request kept for the child: it is never sent (True), else False."""
        request_id = early.cancelled_id(cancel)
        if request_id is None:
            return False
        self.queued, found = early.without_request(self.queued, request_id)
        if found:
            log.info("mcp_kept_request_cancelled", id=wire.id_key(request_id)[:80])
        return found

    async def _send_initialize(self) -> None:
        """Give the running child the client's initialize, once per child (while EARLY). Until
        guardian answered it, the child's answer is the client's; after, guardian's to consume."""
        if self.child is None or not self.initialize_line or self.initialize_sent == self.child_generation:
            return
        self.initialize_sent = self.child_generation
        if self.guardian_began:
            self.owed_initialize = Pending("initialize", self.initialize, time.monotonic())
            if not await self._write_child(self.initialize_line):
                await self.child_down("contextd's stdin is closed")
        else:
            await self._to_child(self.initialize_line, self.initialize)

    async def _begin_session(self) -> None:
        """The grace is over and the child has not answered initialize: guardian answers it, and
        the messages that waited for it are routed as while EARLY."""
        if self.mode != EARLY or self.guardian_began or self.initialize is None:
            return
        if self.initialize_sent == self.child_generation and self.child is not None:
            pending = self._answered(self.initialize["id"])
            if pending is None:
                return  # the child answered it meanwhile
            self.owed_initialize = pending
        self.guardian_began = True
        log.info("mcp_session_begun_by_guardian", child_running=self.child is not None)
        waited, self.queued = self.queued, []
        answer_now = []
        for line, message in waited:  # sorted before any await: kept ones keep their order
            route = early.route(message)
            if route == early.KEEP:
                self.queued.append((line, message))
            elif route == early.CANCEL:
                if not self._drop_kept(message):
                    answer_now.append(message)
            elif route == early.ANSWER:
                answer_now.append(message)
        await self._to_fallback(self.initialize)
        for message in answer_now:
            await self._to_fallback(message)

    async def _child_came_up(self, message: dict, line: bytes) -> bool:
        """While EARLY: is this the child's answer to the client's initialize? Then the session is
        the child's from now on (True); anything else it says before that is dropped (False)."""
        if not wire.is_response(message) or message["id"] is None or self.initialize is None:
            return False
        if wire.id_key(message["id"]) != wire.id_key(self.initialize["id"]):
            return False
        owed, self.owed_initialize = self.owed_initialize, None
        if owed is None:  # within the grace: the client gets contextd's own answer
            if self._answered(message["id"]) is None:
                return False
            if "result" in message:
                self.initialize_answered = True
            await self.send_client(line)
            self.stats.forwarded_to_client += 1
            await self._give_to_child()
            return True
        if "result" not in message:
            await self.child_down(f"contextd refused initialize: {one_line(message.get('error'))}")
            return True
        if self.client_initialized:
            await self._write_child(INITIALIZED)
        kept = len(self.queued)
        await self._give_to_child()
        self.stats.handovers += 1
        log.info("mcp_handed_over", generation=self.child_generation, kept=kept)
        if self.client_initialized:
            await self._ask_child_tools()
        return True

    async def _give_to_child(self) -> None:
        """The kept messages to the child in their order (new ones queue behind them), then CHILD."""
        self.mode = HANDOVER
        while self.mode == HANDOVER and self.queued:
            line, message = self.queued.pop(0)
            await self._to_child(line, message)
        if self.mode == HANDOVER:
            self.mode = CHILD

    # ------------------------------------------------------------------ guardian -> client

    async def _pump_fallback(self) -> None:
        async for line in self.fallback.answers():
            message = wire.read_line(line).message
            if message is not None and message.get("id") == PRIME_ID:
                continue
            if message is not None and message.get("method") is None and "id" in message:
                self.stats.fallback_answers += 1
                self.fallback_open -= 1
                method = self.fallback_methods.pop(wire.id_key(message["id"]), "")
                if method == "initialize" and "result" in message:
                    self.initialize_answered = True
                if method == "tools/list" and isinstance(message.get("result"), dict):
                    self.told_tools = message["result"].get("tools")
            await self.send_client(line)

    # ------------------------------------------------------------------ child -> client

    async def _read_child(self, child: asyncio.subprocess.Process, generation: int) -> None:
        try:
            async for raw in stdio.read_lines(child.stdout):
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
        if self.mode == EARLY:
            if await self._child_came_up(message, terminated(line.raw)) or self.guardian_began or "id" in message:
                return  # before its answer to initialize only a notification passes, and only
                # while the client is still waiting for that answer (guardian has not begun)
        elif self.mode not in (CHILD, HANDOVER):
            return  # a child not handed the session yet: nothing it says is for the client
        if wire.is_response(message) and message["id"] is not None:
            pending = self._answered(message["id"])
            if pending is None:
                log.warning("mcp_child_answer_unmatched", id=wire.id_key(message["id"])[:80])
                return
            if pending.method == "initialize" and "result" in message:
                self.initialize_answered = True
            if pending.method == "tools/list" and "result" in message:
                self.told_tools = None  # the client has contextd's own list now
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
        if request_id is None or self.mode not in (CHILD, HANDOVER):
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
        await self._tell_tools_changed(result)

    async def _tell_tools_changed(self, result: Any) -> None:
        """The client listed guardian's tools (while contextd started or was down) and contextd's
        own differ: tell the client to list them again (it then gets contextd's, write tools too)."""
        told, self.told_tools = self.told_tools, None
        if told is None or self.mode != CHILD or not isinstance(result, dict):
            return
        if tool_signatures(told) != tool_signatures(result.get("tools")):
            log.info("mcp_tools_changed_told")
            await self.send_client(TOOLS_CHANGED)

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
        if child is None and self.mode not in (STARTING, EARLY):
            return
        self.child, self.child_exited = None, None
        self.child_generation += 1
        self.owed_initialize = None
        was_serving = self.mode in (CHILD, HANDOVER)
        # the client's initialize taken while EARLY, given to no child and answered by nobody yet
        initialize_untaken = self.mode == EARLY and not self.guardian_began and bool(self.initialize_line)
        self.reason = reason
        self.mode = FALLBACK
        for future in self._reinit.values():  # a restart that was being re-initialized died
            if not future.done():
                future.set_result({"error": reason})
        left_open = self.open_requests()
        log.warning("mcp_fallback", reason=reason, open_requests=len(left_open))
        self.stats.outages.append(reason)
        self.pending.clear()
        if initialize_untaken and not any(p.method == "initialize" for p in left_open):
            await self._to_fallback(self.initialize)
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
            waiting = self.open_requests() + ([self.owed_initialize] if self.owed_initialize else [])
            if self.mode not in (CHILD, EARLY, HANDOVER) or not waiting:
                continue
            timeout = self.options.answer_timeout if self.child_spoke else self.options.start_timeout
            now = time.monotonic()
            oldest = min(p.sent_at for p in waiting)
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
            if self.mode in (STARTING, EARLY):
                await self.child_down(self.reason)
            return None
        exited = self.child_exited
        if self.mode == EARLY:  # the session is served meanwhile; the child takes it once it answers
            await self._send_initialize()
            return exited
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
        self.mode = HANDOVER  # what the client sends meanwhile queues behind what waited already
        self.last_child_output = time.monotonic()
        if was_fallback:
            self.stats.handbacks += 1
            log.info("mcp_handed_back", generation=self.child_generation)
            if self.client_initialized:
                await self._ask_child_tools()
        await self._give_to_child()
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
