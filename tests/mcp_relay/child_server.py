"""A small real MCP stdio server (the `mcp` SDK) standing in for `contextd --mcp` in guardian's tests.

It exposes contextd's tool names with contextd's input schemas (guardian's built-in copy, with
one description changed so a test can tell the child's list from the built-in one) and answers
every call with ``{"served_by": "child", ...}``. It writes its pid to ``--pidfile`` so a test
can kill it, and appends each call's tool name to ``--calls``.

Usage: python child_server.py --pidfile F [--calls F] [--hang-on TOOL]
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from guardian.mcp.tools import BUILTIN_TOOLS, SERVED_TOOLS

CHILD_MARK = "(child's own definition)"
EXTRA_TOOLS = ("memory_record", "checkpoint_save")


def tool_definitions() -> list[types.Tool]:
    tools = []
    for name in SERVED_TOOLS:
        definition = copy.deepcopy(BUILTIN_TOOLS[name])
        definition["description"] = f"{definition['description']} {CHILD_MARK}"
        tools.append(types.Tool.model_validate(definition))
    for name in EXTRA_TOOLS:
        tools.append(types.Tool(name=name, description=f"{name} (writes)", input_schema={"type": "object"}))
    return tools


def child_answer(name: str, arguments: dict) -> dict:
    if name == "memory_search":
        return {"memories": [{"id": "child-memory", "title": "from the child", "content": arguments.get("query", ""),
                              "outcome": "success", "confidence": 0.9, "relevance": 1.0, "tags": []}],
                "count": 1, "metadata": {"served_by": "child"}}
    if name == "semantic_search":
        return {"results": [], "count": 0, "query": arguments.get("query", ""), "source": "semantic"}
    if name == "remediation_search":
        return {"remediations": [], "count": 0}
    if name == "checkpoint_list":
        return {"checkpoints": [], "count": 0}
    if name == "checkpoint_resume":
        return {"checkpoint_id": arguments.get("checkpoint_id", ""), "session_id": "s", "content": "child",
                "token_count": 1, "level": arguments.get("level", "summary")}
    return {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--calls", default="")
    parser.add_argument("--hang-on", default="")
    options = parser.parse_args()
    with open(options.pidfile + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(options.pidfile + ".tmp", options.pidfile)

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tool_definitions())

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        if options.calls:
            with open(options.calls, "a") as handle:
                handle.write(params.name + "\n")
        if params.name == options.hang_on:
            while True:
                time.sleep(3600)  # a hung contextd: alive, silent
        structured = child_answer(params.name, params.arguments or {})
        return types.CallToolResult(content=[types.TextContent(text=f"child answered {params.name}")],
                                    structured_content=structured)

    server = Server("contextd-test-child", version="0.0.1", on_list_tools=list_tools, on_call_tool=call_tool)

    async def serve() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(serve)


if __name__ == "__main__":
    main()
