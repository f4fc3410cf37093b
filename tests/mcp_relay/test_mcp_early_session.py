"""The first second of a session: a real SDK client against `guardian mcp -- CHILD`, where CHILD loads
the store with the real chromem and then waits for the test to let it answer (a contextd loading a
large store). guardian answers meanwhile; its answers equal the ones CHILD gives once it is up; a
write made during the load is stored by CHILD once it answers. With a `guardian run` sidecar on
the store, the session's searches are answered by the sidecar's index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import anyio
import pytest

from tests.mcp_relay.conftest import PROJECT, ROOT
from tests.mcp_relay.test_mcp_session import FALLBACK_KEY, Session, guardian_params, served_by_fallback
from tests.waiting import wait_for

LOADING_CHILD = os.path.join(os.path.dirname(__file__), "loading_child.py")
QUERIES = ["jwt refresh token rotation", "postgres connection pool exhausted", "flaky test on ci"]


def loading_child(chromemh, store, models, tmp_path) -> list[str]:
    return [sys.executable, LOADING_CHILD, "--chromem", str(chromemh), "--store", str(store), "--models",
            str(models), "--stored", str(tmp_path / "stored.jsonl"), "--gate", str(tmp_path / "gate")]


def ranked(result) -> list[tuple[str, float]]:
    return [(m["id"], m["relevance"]) for m in result.structured_content["memories"]]


async def search(client, query):
    return await client.call_tool("memory_search", {"project_id": PROJECT, "query": query})


def first_second(tmp_path, params) -> dict:
    """initialize, tools/list and searches while CHILD loads; a write kept meanwhile; the gate opens;
    the same searches again, now from CHILD. Returns what the client got."""
    got = {}

    async def body(client):
        got["init"] = await client.initialize()
        got["tools"] = await client.list_tools()
        got["early"] = [await search(client, query) for query in QUERIES]
        async with anyio.create_task_group() as group:
            async def record():
                got["record"] = await client.call_tool("memory_record", {"project_id": PROJECT,
                                                                          "title": "during the load"})
            group.start_soon(record)
            await anyio.sleep(0)  # the write goes out first; a search's answer then says guardian read it
            got["between"] = await search(client, QUERIES[0])
            got["stored_before_gate"] = (tmp_path / "stored.jsonl").exists()
            (tmp_path / "gate").touch()  # the child's load ends
        got["later"] = [await search(client, query) for query in QUERIES]

    session = Session(params)
    anyio.run(session.run, body)
    assert session.transport_errors == []
    return got


def assert_first_answers_equal_contextds(tmp_path, got) -> None:
    assert got["init"].server_info.name == "guardian-fallback"  # the child was still loading
    assert "memory_search" in {t.name for t in got["tools"].tools}
    for early, later in zip(got["early"], got["later"]):
        assert served_by_fallback(early) and early.meta[FALLBACK_KEY]["contextd"] == "starting"
        assert early.meta[FALLBACK_KEY]["source"] == "semantic"
        assert not served_by_fallback(later) and later.content[0].text.startswith("contextd-loading-child")
        assert [i for i, _ in ranked(early)] == [i for i, _ in ranked(later)] and ranked(later)
        assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(ranked(early), ranked(later)))
    assert served_by_fallback(got["between"]) and got["stored_before_gate"] is False
    assert not served_by_fallback(got["record"]) and got["record"].structured_content["title"] == "during the load"
    stored = [json.loads(line) for line in (tmp_path / "stored.jsonl").read_text().splitlines()]
    assert stored == [{"project_id": PROJECT, "title": "during the load"}]  # once, by contextd


@pytest.mark.slow(20)
def test_first_answers_from_the_session_index_equal_contextds(tmp_path, chromemh, contextd_store, model_dir):
    params = guardian_params(contextd_store, tmp_path / "state", loading_child(chromemh, contextd_store, model_dir,
                                                                               tmp_path),
                             models=model_dir, early_grace=0.05)
    assert_first_answers_equal_contextds(tmp_path, first_second(tmp_path, params))


def start_sidecar(tmp_path, store, state):
    """`guardian run` on the store (no child), and its control socket."""
    from guardian.local.paths import StatePaths

    env = dict(os.environ, PYTHONPATH=str(ROOT), GUARDIAN_STATE_DIR=str(state),
               GUARDIAN_CONFIG=str(state / "none.toml"), EMBEDDINGS_CACHE_DIR=str(tmp_path / "not-the-sessions-models"))
    sidecar = subprocess.Popen([sys.executable, "-m", "guardian", "run", "--store", str(store), "--port", "0"],
                               env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "sidecar.log", "wb"))
    return sidecar, StatePaths.for_store(store, state).control_socket


def sidecar_ready(socket, store, caller):
    from guardian.errors import GuardianError
    from guardian.runtime.control import control_request

    try:
        return control_request(socket, "mcp_ready", timeout=30, store=str(store), **caller)
    except GuardianError:
        return None


@pytest.mark.slow(30)
def test_with_a_sidecar_the_sessions_ask_it(tmp_path, chromemh, contextd_store, model_dir):
    state = tmp_path / "state"
    sidecar, socket = start_sidecar(tmp_path, contextd_store, state)
    caller = {"model": "BAAI/bge-small-en-v1.5", "models_dir": str(model_dir)}
    try:
        wait_for(lambda: sidecar_ready(socket, contextd_store, caller), 120, what="the sidecar to answer mcp_ready")
        params = guardian_params(contextd_store, state, loading_child(chromemh, contextd_store, model_dir, tmp_path),
                                 models=model_dir, early_grace=0.05)
        assert_first_answers_equal_contextds(tmp_path, first_second(tmp_path, params))
        # every search guardian answered was the sidecar's: its fallback ran there
        assert sidecar_ready(socket, contextd_store, caller)["answered"] == len(QUERIES) + 1
    finally:
        sidecar.terminate()
        sidecar.wait(timeout=60)

@pytest.mark.slow(30)
def test_when_the_sidecar_dies_the_session_answers_itself(tmp_path, chromemh, contextd_store, model_dir):
    """The session's fallback ran in the sidecar; the sidecar is killed mid-session: the session's own
    server takes over (primed with the client's initialize) and the next search is answered the same."""
    from guardian.runtime.control import control_request

    state = tmp_path / "state"
    sidecar, socket = start_sidecar(tmp_path, contextd_store, state)
    caller = {"model": "BAAI/bge-small-en-v1.5", "models_dir": str(model_dir)}
    got = {}

    async def body(client):
        await client.initialize()
        got["before"] = await search(client, QUERIES[1])
        got["answered_by_sidecar"] = control_request(socket, "mcp_ready", timeout=30, store=str(contextd_store),
                                                     **caller)["answered"]
        sidecar.kill()
        sidecar.wait(timeout=60)
        got["after"] = await search(client, QUERIES[1])
        (tmp_path / "gate").touch()

    try:
        wait_for(lambda: sidecar_ready(socket, contextd_store, caller), 120, what="the sidecar to answer mcp_ready")
        params = guardian_params(contextd_store, state, loading_child(chromemh, contextd_store, model_dir, tmp_path),
                                 models=model_dir, early_grace=0.05)
        session = Session(params)
        anyio.run(session.run, body)
        assert session.transport_errors == []
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
            sidecar.wait(timeout=60)
    assert got["answered_by_sidecar"] == 1
    for result in (got["before"], got["after"]):
        assert served_by_fallback(result) and result.meta[FALLBACK_KEY]["contextd"] == "starting"
    assert ranked(got["before"]) == ranked(got["after"]) and ranked(got["after"])
