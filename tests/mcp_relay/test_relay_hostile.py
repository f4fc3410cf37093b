"""Lines that must not take `guardian mcp` down: hostile client lines, a child writing more than
JSON-RPC, a child dying mid-line. A real `guardian mcp` process on raw pipes; the child is a real
process (rogue_child.py) or missing (the fallback serves)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from tests.mcp_relay.conftest import ROOT
from tests.waiting import wait_for

ROGUE_CHILD = os.path.join(os.path.dirname(__file__), "rogue_child.py")
INITIALIZE = (b'{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18",'
              b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n')
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (line, the answers it is owed: [(id, error code or None for any answer)], None when it is a batch)
HOSTILE = [
    (nested(1200) + b"\n", [(None, -32700)]),                      # the line of issue 24: exit 70 before
    (b"[" * 200_000 + b"\n", [(None, -32700)]),
    (b'\xff\xfe{"jsonrpc":"2.0","id":"u","method":"ping"}\n', [(None, -32700)]),
    (b'{"jsonrpc":"2.0","id":"cut","method":\n', [(None, -32700)]),
    (b"42\n", [(None, -32600)]),
    (b'"text"\n', [(None, -32600)]),
    (b"[]\n", [(None, -32600)]),
    (b'{"jsonrpc":"2.0","id":{"a":[1]},"method":"ping"}\n', [(None, -32600)]),
    (b'{"id":"no-version","method":"ping"}\n', [("no-version", -32600)]),
    (b'{"jsonrpc":"2.0","id":"m","method":5}\n', [("m", -32600)]),
    (b'{"jsonrpc":"2.0","id":"io.guardian/tools-1","method":"ping"}\n', [("io.guardian/tools-1", -32600)]),
    (b'{"jsonrpc":"2.0","method":"notifications/x","params":5}\n', []),   # a notification: never answered
    (b'{"jsonrpc":"2.0","id":"stray","result":{}}\n', []),                 # a response nobody asked for
    (b"\n", []),
    (b"  \r\n", []),
    (b'{"jsonrpc":"2.0","id":"deep","method":"tools/call","params":{"name":"memory_search","arguments":'
     b'{"project_id":"p","query":"q","x":' + nested(1000) + b"}}}\n", [("deep", None)]),
    (b'{"jsonrpc":"2.0","id":"array-params","method":"tools/list","params":[]}\n', [("array-params", None)]),
    (b'{"jsonrpc":"2.0","id":5.0,"method":"ping"}\n', [(5, None)]),
    (b'{"jsonrpc":"2.0","id":"half-emoji","method":"tools/call","params":{"name":"memory_search","arguments":'
     b'{"project_id":"p","query":"\\ud83d"}}}\n', [("half-emoji", None)]),
]
BATCH = (b'[{"jsonrpc":"2.0","id":"b1","method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},7,'
         b'{"jsonrpc":"2.0","id":"b2","method":"ping"}]\n')


class Relay:
    """`guardian mcp -- CHILD` on raw pipes: every stdout line kept, stderr kept."""

    def __init__(self, tmp_path, child: list[str]) -> None:
        (tmp_path / "store").mkdir(exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT), GUARDIAN_STATE_DIR=str(tmp_path / "state"),
                   GUARDIAN_CONFIG=str(tmp_path / "none.toml"), EMBEDDINGS_CACHE_DIR=str(tmp_path / "no-models"),
                   GUARDIAN_BACKOFF_INITIAL="0.2", GUARDIAN_BACKOFF_MAX="1",
                   GUARDIAN_MCP_EARLY_GRACE="120")  # the child's own initialize answer, not guardian's early one
        self.proc = subprocess.Popen([sys.executable, "-m", "guardian", "mcp", "--store", str(tmp_path / "store"),
                                      "--", *child], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self._threads = [threading.Thread(target=self._collect, args=(self.proc.stdout, self.out), daemon=True),
                         threading.Thread(target=self._collect, args=(self.proc.stderr, self.err), daemon=True)]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _collect(stream, into: list) -> None:
        for line in stream:
            into.append(line)

    def send(self, raw: bytes) -> None:
        self.proc.stdin.write(raw)
        self.proc.stdin.flush()

    def answers(self) -> list:
        return [json.loads(line) for line in list(self.out)]

    def answer(self, request_id, timeout: float = 60):
        def found():
            return next((a for a in self.answers() if isinstance(a, dict) and a.get("id") == request_id), None)
        return wait_for(found, timeout, what=f"an answer to {request_id!r}")

    def close(self) -> int:
        self.proc.stdin.close()
        code = self.proc.wait(timeout=120)
        for thread in self._threads:
            thread.join(timeout=60)
        return code

    @property
    def stderr(self) -> str:
        return b"".join(self.err).decode("utf-8", "replace")


@pytest.mark.parametrize("serving", ["child", "fallback"])
def test_no_client_line_ends_the_session(tmp_path, serving):
    child = [sys.executable, ROGUE_CHILD, str(tmp_path / "sent")] if serving == "child" else [str(tmp_path / "none")]
    relay = Relay(tmp_path, child)
    relay.send(INITIALIZE)
    relay.answer("init")
    relay.send(INITIALIZED)
    for line, _ in HOSTILE:
        relay.send(line)
    relay.send(BATCH)
    relay.send(b'{"jsonrpc":"2.0","id":"after","method":"ping"}\n')
    relay.answer("after")
    relay.send(b'{"jsonrpc":"2.0","id":"last","method":"ping"}')  # the last line, with no newline
    assert relay.close() == 0, relay.stderr
    assert relay.answer("last", timeout=0)
    assert "Traceback" not in relay.stderr and "internal error" not in relay.stderr, relay.stderr

    singles = [a for a in relay.answers() if isinstance(a, dict)]
    owed = [entry for _, answers in HOSTILE for entry in answers]
    for request_id, code in owed:
        matching = [a for a in singles if a["id"] == request_id and (code is None or a["error"]["code"] == code)]
        assert matching, (request_id, code, singles)
    errors_with_null_id = [a for a in singles if a["id"] is None]
    assert len(errors_with_null_id) == sum(1 for entry in owed if entry[0] is None)  # nothing else answered
    assert not any(a["id"] in ("stray", None) and "result" in a for a in singles)
    batches = [a for a in relay.answers() if isinstance(a, list)]
    assert [[(e["id"], e["error"]["code"]) for e in batch] for batch in batches] == [
        [("b1", -32600), (None, -32600), ("b2", -32600)]]
    assert "mcp_client_line_refused" in relay.stderr


def test_an_overlong_line_is_answered_and_skipped(tmp_path):
    relay = Relay(tmp_path, [str(tmp_path / "none")])
    relay.send(INITIALIZE)
    relay.answer("init")
    limit = 64 * 1024 * 1024
    relay.send(b'{"jsonrpc":"2.0","id":"huge","method":"ping","params":{"x":"' + b"a" * limit + b'"}}\n')
    relay.send(b'{"jsonrpc":"2.0","id":"after","method":"ping"}\n')
    assert relay.answer("after")["result"] == {}
    assert relay.close() == 0, relay.stderr
    assert [(a["id"], a["error"]["code"]) for a in relay.answers() if "error" in a] == [(None, -32700)]
    assert "over 67108864 bytes" in relay.stderr


def test_only_whole_messages_from_the_child_reach_the_client(tmp_path):
    """The child's noise is dropped, its messages pass byte for byte, each answer once; an answer
    that is not JSON-RPC becomes an error to its request; a child dying mid-line leaves no half line."""
    relay = Relay(tmp_path, [sys.executable, ROGUE_CHILD, str(tmp_path / "sent")])
    relay.send(INITIALIZE)
    relay.answer("init")
    relay.send(INITIALIZED)
    for request_id, method in (("list", "tools/list"), ("twice", "rogue/twice"), ("bad", "rogue/bad_answer"),
                               ("codeless", "rogue/codeless_error"), ("echo", "anything")):
        relay.send(b'{"jsonrpc":"2.0","id":"%s","method":"%s"}\n' % (request_id.encode(), method.encode()))
        relay.answer(request_id)
    for request_id in ("bad", "codeless"):
        bad = relay.answer(request_id)
        assert bad["error"]["code"] == -32603 and "not a JSON-RPC message" in bad["error"]["message"]
    wait_for(lambda: "mcp_child_answer_unmatched" in relay.stderr, 60, what="the second answer to be dropped")
    before_death = list(relay.out)

    relay.send(b'{"jsonrpc":"2.0","id":"die","method":"rogue/die_mid_line"}\n')
    died = relay.answer("die")  # the fallback answers what the dead child left open
    assert "error" in died and died["error"]["code"] == -32601, died
    assert relay.close() == 0, relay.stderr

    sent = [line for line in (tmp_path / "sent").read_bytes().splitlines(keepends=True)
            if b'"io.guardian/' not in line]
    assert [line for line in before_death if b'"bad"' not in line and b'"codeless"' not in line] == sent
    assert sum(1 for line in before_death if b'"twice"' in line) == 1
    for line in relay.out:
        assert json.loads(line)["jsonrpc"] == "2.0"  # every line the client got is a message
    assert relay.stderr.count("mcp_child_line_dropped") >= 6 * 5
    assert '{\\"jsonrpc\\":\\"2.0\\",\\"id\\":' in relay.stderr  # the half line, logged, not passed on
