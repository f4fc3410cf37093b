"""guardian's own MCP server for the time contextd is down, built on the ``mcp`` SDK's lowlevel Server.

The relay feeds it the client's JSON-RPC messages (already parsed) and writes what it answers
to the client. It serves contextd's read-only tools (:mod:`guardian.mcp.tools`) from guardian's
index (:mod:`guardian.mcp.answers`); every answer says it came from guardian's fallback (the
text, and ``_meta["io.guardian/fallback"]``). Calls to contextd's write tools get a tool error
saying contextd is down and nothing was stored (guardian does not queue writes).

The SDK session insists on its own ``initialize`` handshake. When the client already
initialized with contextd, the relay primes this server with a copy of the client's own
``initialize`` under a guardian request id and drops the answer (:data:`PRIME_ID`).
"""

from __future__ import annotations

from typing import Any, Callable

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.message import SessionMessage

from guardian import __version__
from guardian.mcp import answers, wire
from guardian.mcp.tools import SERVED_TOOLS, WRITE_TOOLS, ToolCatalog

PRIME_ID = "io.guardian/fallback-prime"
META_KEY = "io.guardian/fallback"
NOTE = "served by guardian's fallback: contextd is not answering"
INSTRUCTIONS = ("contextd is not answering; guardian serves its read-only search tools from the store "
                "until contextd is back. Writes are refused, nothing is queued.")


class FallbackServer:
    """The SDK server, wired to in-memory streams the relay writes to and reads from."""

    def __init__(self, catalog: ToolCatalog, searcher: Callable[[], answers.Searcher],
                 reason: Callable[[], str] = lambda: "contextd is down") -> None:
        self.catalog = catalog
        self.searcher = searcher
        self.reason = reason
        self.calls = 0
        self.server = Server("guardian-fallback", version=__version__, instructions=INSTRUCTIONS,
                             on_list_tools=self._list_tools, on_call_tool=self._call_tool)
        self._to_server, self._server_in = anyio.create_memory_object_stream[SessionMessage | Exception](1000)
        self._server_out, self._from_server = anyio.create_memory_object_stream[SessionMessage](1000)

    async def serve(self) -> None:
        """Run the SDK server until :meth:`close`."""
        await self.server.run(self._server_in, self._server_out, self.server.create_initialization_options())

    async def submit(self, message: dict) -> None:
        """Hand one client message (a JSON-RPC message, as :mod:`guardian.mcp.wire` passed it) to the server.

        A request the SDK cannot read (``params`` an array, a field of the wrong type) is answered
        here with -32602: the SDK would log it and never answer, and the client would wait for ever.
        """
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

    async def _list_tools(self, ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool_model(t) for t in self.catalog.definitions()],
                                     _meta={META_KEY: self._meta()})

    async def _call_tool(self, ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        self.calls += 1
        name = params.name
        if name not in SERVED_TOOLS:
            return self._error(refusal(name, self.reason()))
        try:
            answer = await anyio.to_thread.run_sync(self._answer, name, params.arguments or {})
        except answers.ToolError as exc:
            return self._error(f"{exc} ({NOTE})")
        except Exception as exc:  # the index or model failed: the session must survive it
            return self._error(f"{name} failed in guardian's fallback: {exc}")
        return types.CallToolResult(content=[types.TextContent(text=f"{answer.text} ({NOTE})")],
                                    structured_content=answer.structured,
                                    _meta={META_KEY: self._meta() | {"source": answer.source}})

    def _answer(self, name: str, arguments: dict) -> answers.Answer:
        return answers.answer(self.searcher(), name, arguments)

    def _meta(self) -> dict[str, Any]:
        return {"served_by": "guardian", "reason": self.reason()}

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


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def first_error(exc: BaseException) -> str:
    """A validation error's first complaint (``params: Input should be a valid dictionary``), else its text."""
    try:
        error = exc.errors()[0]
        return f"{'.'.join(str(part) for part in error['loc'][1:])}: {error['msg']}"
    except (AttributeError, IndexError, KeyError, TypeError):
        return one_line(exc)


def prime_messages(initialize: dict) -> list[dict]:
    """The client's own initialize (under guardian's id) and the initialized notification."""
    request = {"jsonrpc": "2.0", "id": PRIME_ID, "method": "initialize", "params": initialize.get("params") or {}}
    return [request, {"jsonrpc": "2.0", "method": "notifications/initialized"}]
