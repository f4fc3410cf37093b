"""guardian's own MCP server for the time contextd does not answer, built on the ``mcp`` SDK's lowlevel Server.

contextd does not answer in two phases of a session: while it starts (it loads its embedding model
and the whole store before its first answer: a minute on a large store) and while it is down. The
relay feeds this server the client's JSON-RPC messages (already parsed) and writes what it answers
to the client. It serves contextd's read-only tools (:mod:`guardian.mcp.tools`) with answers from
the session's answer source (:mod:`guardian.mcp.sources`: the sidecar's index or the session's
own); every answer says it came from guardian (the text, and ``_meta["io.guardian/fallback"]``,
whose ``contextd`` says ``starting`` or ``down``). While contextd starts it lists contextd's whole
tool list (the relay keeps the other calls for contextd); while contextd is down, the served tools,
and calls to contextd's write tools get a tool error saying nothing was stored (no queue).

The SDK session insists on its own ``initialize`` handshake. When the client already
initialized with contextd, the relay primes this server with a copy of the client's own
``initialize`` under a guardian request id and drops the answer (:data:`guardian.mcp.link.PRIME_ID`).
"""

from __future__ import annotations

from typing import Any, Callable

import anyio
import mcp_types as types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.shared.message import SessionMessage

from guardian import __version__
from guardian.mcp import wire
from guardian.mcp.link import DOWN, STARTING, STREAM_LIMIT, one_line
from guardian.mcp.sources import Answer, ToolError
from guardian.mcp.tools import SERVED_TOOLS, WRITE_TOOLS, ToolCatalog

META_KEY = "io.guardian/fallback"
NOTES = {STARTING: "served by guardian: contextd is still loading",
         DOWN: "served by guardian's fallback: contextd is not answering"}
NOTE = NOTES[DOWN]
INSTRUCTIONS = {
    STARTING: ("contextd was still loading when this session began; guardian answered its search tools "
               "from the same store until it was ready, and its other calls waited for contextd."),
    DOWN: ("contextd is not answering; guardian serves its read-only search tools from the store "
           "until contextd is back. Writes are refused, nothing is queued."),
}


class FallbackServer:
    """The SDK server, wired to in-memory streams the relay writes to and reads from."""

    def __init__(self, catalog: ToolCatalog, answer: Callable[[str, dict], Answer],
                 reason: Callable[[], str] = lambda: "contextd is down",
                 phase: Callable[[], str] = lambda: DOWN) -> None:
        self.catalog = catalog
        self.answer = answer
        self.reason = reason
        self.phase = phase
        self.calls = 0
        self.server = Server("guardian-fallback", version=__version__, instructions=INSTRUCTIONS[DOWN],
                             on_list_tools=self._list_tools, on_call_tool=self._call_tool)
        # tools.listChanged: after a session guardian began, the relay tells the client when
        # contextd's own list differs from what guardian listed
        self.options = self.server.create_initialization_options(NotificationOptions(tools_changed=True))
        self._to_server, self._server_in = anyio.create_memory_object_stream[SessionMessage | Exception](1000)
        self._server_out, self._from_server = anyio.create_memory_object_stream[SessionMessage](1000)

    async def serve(self) -> None:
        """Run the SDK server until :meth:`close`."""
        await self.server.run(self._server_in, self._server_out, self.options)

    async def submit(self, message: dict) -> None:
        """Hand one client message (a JSON-RPC message, as :mod:`guardian.mcp.wire` passed it) to the server.

        A request the SDK cannot read (``params`` an array, a field of the wrong type) is answered
        here with -32602: the SDK would log it and never answer, and the client would wait for ever.
        """
        if message.get("method") == "initialize":
            self.options.instructions = INSTRUCTIONS[self.phase()]  # read when the SDK answers it
        if isinstance(message.get("id"), float):
            message = dict(message, id=int(message["id"]))  # 7.0 is request 7 (the SDK takes a float id for none)
        try:
            parsed = types.jsonrpc_message_adapter.validate_python(message, by_name=False)
        except (ValueError, RecursionError) as exc:
            if wire.is_request(message):
                await self._server_out.send(SessionMessage(error_message(
                    message["id"], types.INVALID_PARAMS, f"Invalid params: {first_error(exc)}")))
            return
        await self._to_server.send(SessionMessage(parsed))

    async def answers(self):
        """Every message the server sends, as one line of JSON (bytes, newline-terminated).

        An answer that cannot be written as JSON (nesting past pydantic's serialisation depth) is
        replaced by an error to the same request, so that the request is still answered."""
        async for session_message in self._from_server:
            message = session_message.message
            try:
                data = message.model_dump_json(by_alias=True, exclude_unset=True).encode("utf-8")
            except (ValueError, RecursionError) as exc:  # UnicodeEncodeError (a lone surrogate) is a ValueError
                request_id = getattr(message, "id", None)
                if request_id is None:
                    continue
                data = error_message(request_id, types.INTERNAL_ERROR,
                                     f"guardian's fallback could not write its answer: {one_line(exc)}"
                                     ).model_dump_json(by_alias=True, exclude_unset=True).encode("utf-8")
            yield data + b"\n"

    async def close(self) -> None:
        await self._to_server.aclose()

    # ------------------------------------------------------------------ handlers

    def listed(self) -> list[dict]:
        """The tools this server lists now: contextd's whole list while it starts, else the served ones."""
        return self.catalog.listing() if self.phase() == STARTING else self.catalog.definitions()

    async def _list_tools(self, ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool_model(t) for t in self.listed()], _meta={META_KEY: self._meta()})

    async def _call_tool(self, ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        self.calls += 1
        name = params.name
        if name not in SERVED_TOOLS:
            return self._error(refusal(name, self.reason()))
        note = NOTES[self.phase()]
        try:
            answer = await anyio.to_thread.run_sync(self.answer, name, params.arguments or {})
        except ToolError as exc:
            return self._error(f"{exc} ({note})")
        except Exception as exc:  # the index or model failed: the session must survive it
            return self._error(f"{name} failed in guardian's fallback: {exc}")
        return types.CallToolResult(content=[types.TextContent(text=f"{answer.text} ({note})")],
                                    structured_content=answer.structured,
                                    _meta={META_KEY: self._meta() | {"source": answer.source}})

    def _meta(self) -> dict[str, Any]:
        return {"served_by": "guardian", "contextd": self.phase(), "reason": self.reason()}

    def _error(self, text: str) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True,
                                    _meta={META_KEY: self._meta()})


def tool_model(definition: dict) -> types.Tool:
    """A learned definition as the SDK's Tool; fields this SDK cannot take are dropped, not fatal."""
    try:
        return types.Tool.model_validate(definition)
    except ValueError:
        return types.Tool(name=definition["name"], description=definition.get("description"),
                          input_schema=definition["inputSchema"])


def refusal(tool: str, reason: str) -> str:
    """The tool error for a call guardian cannot serve."""
    if tool in WRITE_TOOLS:
        return (f"{tool} was not run: contextd is down ({reason}) and guardian's fallback only serves "
                f"searches. Nothing was stored; call {tool} again once contextd is back.")
    return (f"{tool} is not available while contextd is down ({reason}); guardian's fallback serves "
            f"{', '.join(SERVED_TOOLS)}.")


def error_message(request_id, code: int, text: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=text))


def first_error(exc: BaseException) -> str:
    """A validation error's first complaint (``params: Input should be a valid dictionary``), else its text."""
    try:
        error = exc.errors()[0]
        return f"{'.'.join(str(part) for part in error['loc'][1:])}: {error['msg']}"
    except (AttributeError, IndexError, KeyError, TypeError):
        return one_line(exc)


def serve_stream(rfile, wfile, catalog: ToolCatalog, answer: Callable[[str, dict], Answer]) -> None:
    """One session's fallback, in the sidecar: the session's messages from ``rfile`` (each with what
    its contextd is doing, see :mod:`guardian.mcp.link`), the server's to ``wfile``, until the
    session closes the stream. Runs on the stream's own thread."""
    state = {"phase": DOWN, "reason": ""}
    server = FallbackServer(catalog, answer, reason=lambda: state["reason"], phase=lambda: state["phase"])

    async def pump(group) -> None:
        async for line in server.answers():
            try:
                await anyio.to_thread.run_sync(wfile.write, line)
            except OSError:  # the session is gone
                group.cancel_scope.cancel()
                return

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve)
            group.start_soon(pump, group)
            while True:
                raw = await anyio.to_thread.run_sync(rfile.readline, STREAM_LIMIT)
                if not raw.endswith(b"\n"):
                    break  # the session closed the stream (or cut a line: the same)
                envelope = _envelope(raw)
                if envelope is None:
                    continue
                state["phase"] = envelope.get("phase") if envelope.get("phase") in NOTES else DOWN
                state["reason"] = str(envelope.get("reason") or "")
                await server.submit(envelope["message"])
            group.cancel_scope.cancel()

    anyio.run(main)


def _envelope(raw: bytes) -> dict | None:
    """A stream line: ``{"phase", "reason", "message"}`` with a JSON-RPC message, else None."""
    try:
        envelope = wire.loads(raw)
    except ValueError:
        return None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
        return None
    return envelope if not wire.message_problem(envelope["message"]) else None
