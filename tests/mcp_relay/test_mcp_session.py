"""`guardian mcp -- CHILD` driven by the mcp SDK's real stdio client; CHILD is a real SDK server.

Kill points come from the session's progress (after an answer), never from the clock; every wait
is a condition with a generous deadline.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.mcp_relay.child_server import CHILD_MARK
from tests.mcp_relay.conftest import CHILD, FASTEMBED_FOLDER, PROJECT, ROOT, expected_memory_ids

GUARDIAN = [sys.executable, "-m", "guardian"]
FALLBACK_KEY = "io.guardian/fallback"
DEADLINE = 60


def guardian_params(store, state, child_cmd, models=None, timeout=30.0, early_grace=120.0):
    env = dict(os.environ, PYTHONPATH=str(ROOT), GUARDIAN_STATE_DIR=str(state), GUARDIAN_BACKOFF_INITIAL="0.2",
               GUARDIAN_BACKOFF_MAX="1", GUARDIAN_MCP_ANSWER_TIMEOUT=str(timeout),
               GUARDIAN_MCP_START_TIMEOUT="300", GUARDIAN_MCP_EARLY_GRACE=str(early_grace),
               EMBEDDINGS_CACHE_DIR=str(models or state / "no-models"), GUARDIAN_CONFIG=str(state / "none.toml"))
    env.pop("EMBEDDINGS_MODEL", None)
    return StdioServerParameters(command=GUARDIAN[0], args=GUARDIAN[1:] + ["mcp", "--store", str(store), "--"]
                                 + child_cmd, env=env, cwd=str(ROOT))


def child_cmd(tmp_path, *extra):
    return [sys.executable, str(CHILD), "--pidfile", str(tmp_path / "child.pid"),
            "--calls", str(tmp_path / "calls.log"), *extra]


def served_by_fallback(result) -> bool:
    return bool(result.meta and FALLBACK_KEY in result.meta)


class Session:
    """A client session plus everything odd it received (non-protocol lines would land here)."""

    def __init__(self, params):
        self.params = params
        self.transport_errors = []

    async def handler(self, message):
        if isinstance(message, Exception):
            self.transport_errors.append(message)

    async def run(self, body):
        async with stdio_client(self.params) as (read, write):
            async with ClientSession(read, write, message_handler=self.handler) as session:
                with anyio.fail_after(DEADLINE * 3):
                    await body(session)


async def until(predicate, timeout=DEADLINE, interval=0.2):
    with anyio.fail_after(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await anyio.sleep(interval)


def read_pid(tmp_path) -> int:
    return int((tmp_path / "child.pid").read_text())


def test_relay_fallback_and_handback(tmp_path, contextd_store, model_dir):
    state = tmp_path / "state"
    session = Session(guardian_params(contextd_store, state, child_cmd(tmp_path), models=model_dir))
    query = "jwt refresh token rotation"
    want = expected_memory_ids(model_dir / FASTEMBED_FOLDER, query)

    async def body(client):
        init = await client.initialize()
        assert init.server_info.name == "contextd-test-child"
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} >= {"memory_search", "memory_record"}
        first = await client.call_tool("memory_search", {"project_id": PROJECT, "query": query})
        assert not served_by_fallback(first) and first.structured_content["memories"][0]["id"] == "child-memory"
        first_pid = read_pid(tmp_path)

        os.kill(first_pid, signal.SIGKILL)  # after an answer: contextd crashes mid-session
        fallback = await client.call_tool("memory_search", {"project_id": PROJECT, "query": query})
        if not served_by_fallback(fallback):  # the restart was faster than the next call: kill again
            os.kill(read_pid(tmp_path), signal.SIGKILL)
            fallback = await until(lambda: _fallback_call(client, query))
        assert served_by_fallback(fallback), fallback
        assert [m["id"] for m in fallback.structured_content["memories"]] == want
        assert fallback.meta[FALLBACK_KEY]["source"] == "semantic"
        assert "served by guardian's fallback" in fallback.content[0].text

        back = await until(lambda: _child_call(client, query))
        assert back.structured_content["memories"][0]["id"] == "child-memory"
        assert read_pid(tmp_path) != first_pid
        again = await client.list_tools()
        assert any(CHILD_MARK in (t.description or "") for t in again.tools)

    anyio.run(session.run, body)
    assert session.transport_errors == []
    saved = json.loads((state / "stores").glob("*/mcp-tools.json").__next__().read_text())
    assert all(CHILD_MARK in t["description"] for t in saved["tools"]) and len(saved["tools"]) == 5


async def _fallback_call(client, query):
    result = await client.call_tool("memory_search", {"project_id": PROJECT, "query": query})
    return result if served_by_fallback(result) else None


async def _child_call(client, query):
    result = await client.call_tool("memory_search", {"project_id": PROJECT, "query": query})
    return None if served_by_fallback(result) else result


@pytest.mark.parametrize("cmd", [["/nonexistent/contextd", "--mcp"], [sys.executable, "-c", "raise SystemExit(3)"]],
                         ids=["missing-binary", "exits-at-once"])
def test_child_that_never_starts(tmp_path, contextd_store, cmd):
    session = Session(guardian_params(contextd_store, tmp_path / "state", cmd))

    async def body(client):
        init = await client.initialize()
        assert init.server_info.name == "guardian-fallback"
        listed = await client.list_tools()
        assert [t.name for t in listed.tools] == ["memory_search", "semantic_search", "remediation_search",
                                                  "checkpoint_list", "checkpoint_resume"]
        assert listed.tools[0].input_schema["required"] == ["project_id", "query"]
        found = await client.call_tool("memory_search", {"project_id": PROJECT, "query": "jwt refresh token"})
        assert served_by_fallback(found) and found.meta[FALLBACK_KEY]["source"] == "grep"
        assert found.structured_content["metadata"]["source"] == "grep"
        assert [m["id"] for m in found.structured_content["memories"]][:2] == [
            "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000010"]
        refused = await client.call_tool("memory_record", {"project_id": PROJECT, "title": "t", "content": "c",
                                                           "outcome": "success"})
        assert refused.is_error and "Nothing was stored" in refused.content[0].text
        resumed = await client.call_tool("checkpoint_resume", {"checkpoint_id": "ckpt-1", "tenant_id": "alice",
                                                               "level": "full"})
        assert resumed.structured_content["content"] == "full state 1"

    anyio.run(session.run, body)
    assert session.transport_errors == []


def test_hung_child_is_replaced(tmp_path, contextd_store, model_dir):
    cmd = child_cmd(tmp_path, "--hang-on", "memory_search")
    session = Session(guardian_params(contextd_store, tmp_path / "state", cmd, models=model_dir, timeout=1.0))

    async def body(client):
        await client.initialize()
        first_pid = read_pid(tmp_path)
        await client.list_tools()  # the child has spoken: from now on answer_timeout (1 s) applies
        answered = await client.call_tool("memory_search", {"project_id": PROJECT, "query": "postgres pool"})
        assert served_by_fallback(answered) and "did not answer" in answered.meta[FALLBACK_KEY]["reason"]
        await until(lambda: _pid_changed(tmp_path, first_pid))
        listed = await until(lambda: _child_tools(client))
        assert listed

    anyio.run(session.run, body)
    assert session.transport_errors == []


async def _pid_changed(tmp_path, old):
    try:
        return read_pid(tmp_path) != old
    except (OSError, ValueError):
        return False


async def _child_tools(client):
    listed = await client.list_tools()
    return listed if "memory_record" in {t.name for t in listed.tools} else None
