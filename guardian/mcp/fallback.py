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

import json
from typing import Any, Callable

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.message import SessionMessage

from guardian import __version__
from guardian.mcp import answers
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
        """Hand one client message (a parsed JSON-RPC object) to the server."""
        try:
            parsed = types.jsonrpc_message_adapter.validate_python(message, by_name=False)
        except ValueError as exc:
            await self._to_server.send(exc)
            return
        await self._to_server.send(SessionMessage(parsed))

    async def answers(self):
        """Every message the server sends, as one line of JSON (bytes, newline-terminated)."""
        async for session_message in self._from_server:
            text = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
            yield text.encode("utf-8") + b"\n"

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


def prime_messages(initialize: dict) -> list[dict]:
    """The client's own initialize (under guardian's id) and the initialized notification."""
    request = {"jsonrpc": "2.0", "id": PRIME_ID, "method": "initialize",
               "params": json.loads(json.dumps(initialize.get("params") or {}))}
    return [request, {"jsonrpc": "2.0", "method": "notifications/initialized"}]
