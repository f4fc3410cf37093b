"""Judging one line of MCP's stdio framing (pure: no process, no pipe)."""

from __future__ import annotations

import json

import pytest

from guardian.mcp import wire
from guardian.mcp.relay import ours


def reply(raw: bytes):
    line = wire.read_line(raw)
    assert line.message is None
    return json.loads(line.reply) if line.reply else None


def test_messages_pass_with_their_kind():
    request = wire.read_line(b'{"jsonrpc":"2.0","id":7,"method":"tools/call"}\n').message
    assert wire.is_request(request) and not wire.is_response(request) and wire.id_key(request["id"]) == "7"
    assert wire.id_key("7") == '"7"' and wire.id_key(7.0) == "7"  # 7 and "7" differ; 7.0 is 7
    answer = wire.read_line(b'{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}').message
    assert wire.is_response(answer)
    assert wire.read_line(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}').message
    assert wire.read_line(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\r\n').message
    assert wire.read_line(b'{"jsonrpc":"2.0","id":"a","method":"x","params":{"q":"\\ud83d"}}').message  # lone surrogate
    assert ours({"id": "io.guardian/reinit-1"}) and not ours({"id": 1}) and not ours({"id": "io.other"})


@pytest.mark.parametrize("raw, request_id, code", [
    (b"[" * 1200 + b"]" * 1200, None, wire.PARSE_ERROR),
    (b"[" * 5000 + b"]" * 5000, None, wire.PARSE_ERROR),
    (b"not json", None, wire.PARSE_ERROR),
    (b'{"jsonrpc":"2.0","id":1,"method":"x"', None, wire.PARSE_ERROR),    # a half line
    (b'\xff{"jsonrpc":"2.0","id":1,"method":"x"}', None, wire.PARSE_ERROR),  # not UTF-8
    (b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"x"}', None, wire.PARSE_ERROR),  # a BOM
    (b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"n":NaN}}', None, wire.PARSE_ERROR),
    (b"42", None, wire.INVALID_REQUEST),
    (b"null", None, wire.INVALID_REQUEST),
    (b"[]", None, wire.INVALID_REQUEST),
    (b'{"jsonrpc":"1.0","id":3,"method":"x"}', 3, wire.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":true,"method":"x"}', None, wire.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1.5,"method":"x"}', None, wire.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":null,"method":"x"}', None, wire.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":"s","method":["x"]}', "s", wire.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":"s","method":"x","params":"p"}', "s", wire.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":"s"}', "s", wire.INVALID_REQUEST),
])
def test_what_is_not_a_message_is_answered(raw, request_id, code):
    answer = reply(raw)
    assert answer["jsonrpc"] == "2.0" and answer["id"] == request_id and answer["error"]["code"] == code


@pytest.mark.parametrize("raw", [
    b"", b"\n", b"  \r\n",
    b'{"jsonrpc":"2.0","method":"notifications/x","params":5}',   # a bad notification: JSON-RPC answers none
    b'{"jsonrpc":"2.0","id":1,"result":{},"error":{}}',           # a bad response: nobody waits for it
    b'{"id":1,"result":{}}',
    b'{"jsonrpc":"2.0","id":1,"error":{"message":"no code"}}',
    b'{"jsonrpc":"2.0","id":1,"error":"text"}',
    b'[{"jsonrpc":"2.0","method":"notifications/x"}]',            # a batch of notifications
])
def test_what_nobody_waits_for_is_not_answered(raw):
    assert reply(raw) is None


def test_a_batch_gets_a_batch_of_errors():
    raw = (b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"},7,'
           b'{"jsonrpc":"2.0","id":2,"result":{}},{"jsonrpc":"2.0","id":"x","method":3}]')
    answers = reply(raw)
    assert [(a["id"], a["error"]["code"]) for a in answers] == [(1, -32600), (None, -32600), ("x", -32600)]
    assert "batch" in answers[0]["error"]["message"]


def test_problems_read_well_and_never_echo_the_whole_line():
    line = wire.read_line(b"\xff" * 10_000 + b"\n")
    assert line.problem.startswith("not JSON") and "\n" not in line.problem
    assert len(line.excerpt()) < 600 and line.excerpt().startswith("\\xff")
    assert json.loads(wire.overlong(64).reply) == {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32700, "message": "Parse error: a line over 64 bytes"}}


def test_an_answer_gone_wrong_still_names_its_request():
    assert wire.answered_id(wire.read_line(b'{"id":"q","result":{}}').value) == "q"
    assert wire.answered_id(wire.read_line(b'{"id":"q","method":"x"}').value) is None  # a request, not an answer
    assert wire.answered_id(wire.read_line(b'{"id":null,"error":{}}').value) is None
    assert wire.answered_id(wire.read_line(b"[1]").value) is None


def test_ids_the_reader_keeps_for_itself_are_refused():
    line = wire.read_line(b'{"jsonrpc":"2.0","id":"io.guardian/tools-1","method":"ping"}', reserved="io.guardian/")
    assert line.message is None and json.loads(line.reply)["id"] == "io.guardian/tools-1"
    assert wire.read_line(b'{"jsonrpc":"2.0","id":"io.guardian/tools-1","result":{}}', reserved="io.guardian/").message
    assert wire.read_line(b'{"jsonrpc":"2.0","id":"io.guardian/tools-1","method":"ping"}').message
