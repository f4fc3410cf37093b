"""While contextd loads, `guardian mcp` answers the session itself; what it keeps reaches contextd in order.

A real `guardian mcp` process and a raw child that reads nothing until a gate file exists (a
contextd loading its store), driven line by line so that every id and every byte can be checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from guardian.mcp import early
from tests.mcp_relay.conftest import ROOT
from tests.waiting import wait_for, wait_until

RAW_CHILD = os.path.join(os.path.dirname(__file__), "raw_child.py")
INITIALIZE = (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
              b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n')
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'


def call(request_id, tool: str, arguments: dict) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments}}).encode() + b"\n"


class Guardian:
    """`guardian mcp -- raw_child RECEIVED SENT GATE`, its stdout read into ``lines`` by a thread."""

    def __init__(self, tmp_path, *flags: str, env: dict | None = None) -> None:
        self.tmp_path = tmp_path
        self.gate = tmp_path / "gate"
        (tmp_path / "store").mkdir()
        environ = dict(os.environ, PYTHONPATH=str(ROOT), GUARDIAN_STATE_DIR=str(tmp_path / "state"),
                       GUARDIAN_CONFIG=str(tmp_path / "none.toml"), EMBEDDINGS_CACHE_DIR=str(tmp_path / "no-models"),
                       **(env or {}))
        cmd = [sys.executable, "-m", "guardian", "mcp", "--store", str(tmp_path / "store"), "--log-level", "info",
               *flags, "--",
               sys.executable, RAW_CHILD, str(tmp_path / "received"), str(tmp_path / "sent"), str(self.gate)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=environ)
        self.lines: list[bytes] = []
        self.stderr: list[bytes] = []
        for stream, into in ((self.proc.stdout, self.lines), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._collect, args=(stream, into), daemon=True).start()

    @staticmethod
    def _collect(stream, into: list) -> None:
        for line in stream:
            into.append(line)

    def logged(self, event: str) -> bool:
        return any(f'"event": "{event}"'.encode() in line for line in list(self.stderr))

    def send(self, *lines: bytes) -> None:
        for line in lines:
            self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def answer(self, request_id, timeout: float = 60.0) -> dict:
        def found():
            for line in list(self.lines):
                message = json.loads(line)
                if message.get("id") == request_id and "method" not in message:
                    return message
            return None
        return wait_for(found, timeout, what=f"the answer to request {request_id}")

    def received(self) -> list[bytes]:
        path = self.tmp_path / "received"
        return path.read_bytes().splitlines(keepends=True) if path.exists() else []

    def close(self) -> int:
        self.proc.stdin.close()
        return self.proc.wait(timeout=60)


def served_by_guardian(answer: dict) -> dict:
    return answer["result"]["_meta"]["io.guardian/fallback"]


def test_served_while_loading_then_kept_messages_reach_the_child_in_order(tmp_path):
    guardian = Guardian(tmp_path)
    try:
        guardian.send(INITIALIZE)
        began = guardian.answer(1)
        assert began["result"]["serverInfo"]["name"] == "guardian-fallback"
        assert began["result"]["capabilities"]["tools"]["listChanged"] is True
        guardian.send(INITIALIZED, b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n')
        listed = guardian.answer(2)
        assert [t["name"] for t in listed["result"]["tools"]][0] == "memory_search"
        assert served_by_guardian(listed)["contextd"] == "starting"
        record = call(3, "memory_record", {"project_id": "p", "title": "kept", "content": "c", "outcome": "success"})
        dropped = call(4, "checkpoint_save", {"session_id": "s"})
        cancel = b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4}}\n'
        resources = b'{"jsonrpc":"2.0","id":"r7","method":"resources/list"}\n'
        guardian.send(record, dropped, cancel, call(5, "memory_search", {"project_id": "p", "query": "q"}),
                      b'{"jsonrpc":"2.0","id":6,"method":"ping"}\n', resources)
        searched = guardian.answer(5)
        assert served_by_guardian(searched)["served_by"] == "guardian"
        assert served_by_guardian(searched)["contextd"] == "starting"
        assert "contextd is still loading" in searched["result"]["content"][0]["text"]
        assert guardian.answer(6)["result"] == {}
        assert guardian.received() == []  # the child is still loading: it has read nothing
        assert not any(json.loads(line).get("id") in (3, 4, "r7") for line in guardian.lines)

        guardian.gate.touch()  # contextd finished loading
        assert guardian.answer(3)["result"]["echo"] == "tools/call"  # the kept write, answered by contextd
        assert guardian.answer("r7")["result"]["echo"] == "resources/list"
        wait_for(lambda: len(guardian.received()) >= 5, 60, what="guardian's own tools/list")
        guardian.send(call(8, "memory_search", {"project_id": "p", "query": "q"}))
        assert guardian.answer(8)["result"]["echo"] == "tools/call"  # from now on: contextd
        wait_for(lambda: b"notifications/tools/list_changed" in b"".join(guardian.lines), 60,
                 what="the client to be told contextd's tools differ from guardian's list")
    finally:
        code = guardian.close()
    received = guardian.received()
    # the client's own initialize (its id), then initialized, then the kept requests in their order;
    # the cancelled one never reaches contextd
    assert received[:4] == [INITIALIZE, INITIALIZED, record, resources]
    assert json.loads(received[4])["id"].startswith("io.guardian/tools-")
    assert received[5:] == [call(8, "memory_search", {"project_id": "p", "query": "q"})]
    answers_to_one = [line for line in guardian.lines if json.loads(line).get("id") == 1]
    assert len(answers_to_one) == 1  # contextd's answer to initialize was guardian's to consume
    assert code == 0


@pytest.mark.parametrize("flags, env", [(["--no-early-answers"], {}), ([], {"GUARDIAN_MCP_EARLY_ANSWERS": "false"})],
                         ids=["flag", "config"])
def test_without_early_answers_the_session_waits_for_contextd(tmp_path, flags, env):
    guardian = Guardian(tmp_path, *flags, env=env)
    try:
        guardian.send(INITIALIZE)
        wait_for(lambda: guardian.logged("mcp_child_started") and guardian.logged("mcp_fallback_in_session"), 60,
                 what="contextd started and the fallback ready")
        # guardian would have answered by now (its grace is 0.05 s): nothing comes before contextd does
        assert not wait_until(lambda: guardian.lines, 3.0), guardian.lines
        guardian.gate.touch()
        answer = guardian.answer(1)
        assert answer["result"]["echo"] == "initialize"  # contextd's own answer, passed through
    finally:
        guardian.close()
    assert guardian.received()[0] == INITIALIZE


def test_a_kept_write_gets_a_clear_error_when_contextd_does_not_come_up(tmp_path):
    guardian = Guardian(tmp_path, env={"GUARDIAN_MCP_START_TIMEOUT": "1", "GUARDIAN_BACKOFF_INITIAL": "600",
                                         "GUARDIAN_BACKOFF_MAX": "600"})
    try:
        guardian.send(INITIALIZE, INITIALIZED, call(2, "memory_record", {"project_id": "p", "title": "t"}))
        refused = guardian.answer(2)
        assert refused["result"]["isError"] is True
        text = refused["result"]["content"][0]["text"]
        assert "memory_record was not run" in text and "Nothing was stored" in text and "did not answer" in text
    finally:
        guardian.close()


def test_routes_while_contextd_starts():
    assert early.route(json.loads(INITIALIZE)) == early.ANSWER
    assert early.route(json.loads(call(1, "memory_search", {}))) == early.ANSWER
    assert early.route(json.loads(call(1, "memory_record", {}))) == early.KEEP
    assert early.route(json.loads(call(1, "no_such_tool", {}))) == early.KEEP
    assert early.route({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}) == early.ANSWER
    assert early.route({"jsonrpc": "2.0", "id": 1, "method": "prompts/list"}) == early.KEEP
    assert early.route({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}) == early.KEEP
    assert early.route({"jsonrpc": "2.0", "id": 1, "result": {}}) == early.DROP
    kept = [(b"a", {"jsonrpc": "2.0", "id": 4, "method": "x"}), (b"b", {"jsonrpc": "2.0", "id": 4.0, "method": "y"})]
    left, found = early.without_request(kept, 4)
    assert found and left == kept[1:]
    assert early.without_request(kept, 5) == (kept, False)
    assert early.cancelled_id({"params": {"requestId": True}}) is None
