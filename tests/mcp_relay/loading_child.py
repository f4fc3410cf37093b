"""A contextd stand-in that loads the store with the real chromem before answering: a real SDK stdio server.

At start it loads the store with chromem (``chromemh dump STORE 0``: chromem-go v0.7.0's own loader),
then waits for ``--gate`` to exist (the test decides when the load "ends"; pass a path that already
exists, or none, for no wait), then serves MCP on stdio. ``memory_search`` is answered as contextd
answers it, computed here without guardian's code: the query embedded by the numpy reference of the
test model, ranked by chromem's own ``QueryEmbedding`` (``chromemh query`` with contextd's tenant
filter and over-fetch), then contextd's confidence/state filter; ``memory_record`` appends its
arguments to ``--stored`` (what the test reads to know a write was stored). No boosts: the tests'
queries hold no capitalised word and no time word.

Usage: python loading_child.py --chromem CHROMEMH --store STORE --models MODELS --stored FILE
       [--gate FILE] [--sleep SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.mcp_relay.conftest import FASTEMBED_FOLDER, reference_embedding  # noqa: E402

NAME = "contextd-loading-child"
RECORD_TOOL = types.Tool(name="memory_record", description="Record a memory (the loading child's)",
                         input_schema={"type": "object", "properties": {"project_id": {"type": "string"},
                                                                         "title": {"type": "string"}}})
SEARCH_TOOL = types.Tool(name="memory_search", description="Search memories (the loading child's)",
                         input_schema={"type": "object", "properties": {"project_id": {"type": "string"},
                                                                         "query": {"type": "string"},
                                                                         "limit": {"type": "integer"}},
                                       "required": ["project_id", "query"]})


def load(chromemh: str, store: str) -> dict[str, dict[str, dict]]:
    """collection -> document id -> document, as chromem loaded them."""
    done = subprocess.run([chromemh, "dump", store, "0"], capture_output=True, check=True, timeout=600)
    dumped = json.loads(done.stdout)
    if not dumped.get("ok"):
        raise SystemExit(f"chromem could not load {store}: {dumped.get('error')}")
    return {collection["name"]: {doc["id"]: doc for doc in collection["documents"]}
            for collection in dumped["collections"]}


def memory_search(options, store: dict, arguments: dict) -> dict:
    project, query = arguments["project_id"], arguments["query"]
    limit = int(arguments.get("limit") or 5)
    collection = f"{project}_memories"
    documents = store.get(collection, {})
    k = min(max(3 * limit, 30), 200, len(documents))
    vector = reference_embedding(Path(options.models) / FASTEMBED_FOLDER, query).tolist()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(vector, handle)
    try:
        where = json.dumps({"tenant_id": project, "project_id": project})
        done = subprocess.run([options.chromem, "query", options.store, "0", collection, handle.name, str(k), where],
                              capture_output=True, check=True, timeout=120)
    finally:
        os.unlink(handle.name)
    memories = []
    for hit in json.loads(done.stdout):
        meta = documents[hit["id"]]["metadata"]
        if float(meta.get("confidence") or 0) < 0.7 or meta.get("state") == "archived":
            continue
        memories.append({"id": meta.get("id") or hit["id"], "title": meta.get("title", ""),
                         "relevance": hit["similarity"]})
    return {"memories": memories[:limit], "count": len(memories[:limit])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chromem", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--stored", required=True)
    parser.add_argument("--gate", default="")
    options = parser.parse_args()
    store = load(options.chromem, options.store)
    while options.gate and not os.path.exists(options.gate):
        time.sleep(0.05)

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[SEARCH_TOOL, RECORD_TOOL])

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = params.arguments or {}
        if params.name == "memory_search":
            structured = memory_search(options, store, arguments)
        elif params.name == "memory_record":
            with open(options.stored, "a") as handle:
                handle.write(json.dumps(arguments) + "\n")
            structured = {"id": f"recorded-{arguments.get('title', '')}", "title": arguments.get("title", "")}
        else:
            return types.CallToolResult(content=[types.TextContent(text=f"no tool {params.name}")], is_error=True)
        return types.CallToolResult(content=[types.TextContent(text=f"{NAME} answered {params.name}")],
                                    structured_content=structured)

    server = Server(NAME, on_list_tools=list_tools, on_call_tool=call_tool)

    async def serve() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(serve)


if __name__ == "__main__":
    main()
