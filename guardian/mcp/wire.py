"""One line of MCP's stdio framing, judged: a JSON-RPC message guardian may pass on, or what to do instead.

guardian stands between a client and contextd and must survive whatever either of them writes:
a line nested thousands deep, a 100 MB line, bytes that are not UTF-8, a bare number, a batch,
the half line of a child that died mid-write. :func:`read_line` never raises; it says what the
line is. A line that is not a message is never passed on: for a client line the caller answers
:attr:`Line.reply` when there is one (JSON-RPC 2.0: a parse error or an invalid request, with the
request's id when it can be known, else null; nothing for a notification or a response, which no
one waits on), and logs the line; a child's is logged and dropped.

Batches (a JSON array of messages) were part of MCP only in its 2025-03-26 revision and are gone
from 2025-06-18, the one contextd and guardian's fallback speak. guardian answers a client's batch
with a batch of errors, one per request in it (as JSON-RPC 2.0 asks of a server that refuses them),
instead of passing a shape neither side of it reads.

Parsing is orjson's (strict RFC 8259: UTF-8, no NaN, at most 1024 levels deep, refused with an
error, never a RecursionError); a line orjson refuses gets json's second opinion, which accepts a
lone surrogate escape (``"\\ud83d"``, what JavaScript's JSON.stringify writes for half an emoji)
as contextd's Go decoder does. Whatever json's recursion limit allows beyond that is refused too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

PARSE_ERROR, INVALID_REQUEST, INTERNAL_ERROR = -32700, -32600, -32603
EXCERPT = 120  # bytes of an offending line quoted in a log event
BLANK = "a blank line"  # skipped without a word: no JSON-RPC peer owes or expects anything for it
JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


@dataclass(frozen=True)
class Line:
    """What one line is. ``message`` is set when it is one JSON-RPC message (request, notification
    or response) to pass on; otherwise ``problem`` says why not and ``reply`` is the error line a
    client is owed for it (empty when none is)."""

    raw: bytes
    message: dict | None = None
    problem: str = ""
    reply: bytes = b""
    value: Any = None  # the parsed JSON, when the line was JSON at all

    @property
    def blank(self) -> bool:
        return self.problem == BLANK

    def excerpt(self) -> str:
        """The start of the line for a log event (a repr: control bytes and non-UTF-8 stay visible)."""
        head = self.raw[:EXCERPT]
        return repr(head)[2:-1] + ("..." if len(self.raw) > EXCERPT else "")


def read_line(raw: bytes, reserved: str = "") -> Line:
    """Judge one line (with or without its newline); see the module docstring. A request whose id
    starts with ``reserved`` is refused: those ids are the reader's own (their answers never reach
    the sender, who would wait for ever)."""
    if not raw.strip():
        return Line(raw, problem=BLANK)
    try:
        value = loads(raw)
    except ValueError as exc:
        problem = f"not JSON ({exc})"
        return Line(raw, problem=problem, reply=error_line(None, PARSE_ERROR, f"Parse error: {problem}"))
    if isinstance(value, list):
        return _batch(raw, value)
    if not isinstance(value, dict):
        problem = f"a JSON {JSON_TYPES.get(type(value), 'value')}, not a JSON-RPC message object"
        return Line(raw, problem=problem, reply=error_line(None, INVALID_REQUEST, f"Invalid Request: {problem}"),
                    value=value)
    problem = message_problem(value, reserved)
    if not problem:
        return Line(raw, message=value, value=value)
    owed = owed_error(value, problem)
    return Line(raw, problem=problem, reply=encode(owed) if owed else b"", value=value)


def overlong(limit: int) -> Line:
    """A line over ``limit`` bytes, skipped unread: its id cannot be known, so a parse error (id null)."""
    problem = f"a line over {limit} bytes"
    return Line(b"", problem=problem, reply=error_line(None, PARSE_ERROR, f"Parse error: {problem}"))


def loads(raw: bytes) -> Any:
    """The JSON value of ``raw``; ValueError (with a one-line reason) when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as first:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(str(first)) from None
        try:
            return json.loads(text, parse_constant=_no_constant)
        except RecursionError:
            raise ValueError("nested too deeply") from None
        except ValueError:
            raise ValueError(str(first)) from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def message_problem(value: dict, reserved: str = "") -> str:
    """Why a JSON object is not a JSON-RPC 2.0 message ('' when it is one)."""
    if value.get("jsonrpc") != "2.0":
        return 'no "jsonrpc": "2.0"'
    if "id" in value and not valid_id(value["id"], response="method" not in value):
        return "the id is not a string or an integer"
    if "method" in value:
        if not isinstance(value["method"], str):
            return "the method is not a string"
        if reserved and isinstance(value.get("id"), str) and value["id"].startswith(reserved):
            return f"request ids starting {reserved} are taken"
        if "params" in value and not isinstance(value["params"], (dict, list)):
            return "params is not an object or an array"
        return ""
    if "id" not in value or ("result" in value) == ("error" in value):
        return "neither a request, a notification nor a response"
    if "error" in value:
        error = value["error"]
        if not isinstance(error, dict) or not integer(error.get("code")):
            return "the error has no integer code"
        if not isinstance(error.get("message"), str):
            return "the error has no message"
    return ""


def valid_id(value: Any, response: bool = False) -> bool:
    """A request id is a string or an integer (an integral float is the same number); an error
    response may carry null (JSON-RPC's answer to a request whose id could not be read)."""
    if value is None:
        return response
    return isinstance(value, str) or integer(value)


def integer(value: Any) -> bool:
    """An integer as JSON carries it: 7 or 7.0, not true."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def id_key(value: Any) -> str:
    """The key a request id is matched by: 7, 7.0 and an answer's 7 are one request."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value)


def answered_id(value: Any) -> Any:
    """The request id a JSON object that is not a valid message still answers (it has an id and
    no method: a response gone wrong), else None."""
    if isinstance(value, dict) and "method" not in value and value.get("id") is not None and valid_id(value["id"]):
        return value["id"]
    return None


def is_request(message: dict) -> bool:
    return "method" in message and "id" in message


def is_response(message: dict) -> bool:
    return "method" not in message and "id" in message


def owed_error(value: dict, problem: str) -> dict | None:
    """The error a sender is owed for an invalid object: a request's (with its id when that is
    valid, else null); none for a notification or a response, which nobody waits on."""
    if "method" not in value and ("result" in value or "error" in value):
        return None
    if "method" in value and "id" not in value:
        return None
    request_id = value.get("id")
    return error_object(request_id if valid_id(request_id) else None, INVALID_REQUEST, f"Invalid Request: {problem}")


def _batch(raw: bytes, items: list) -> Line:
    if not items:
        return Line(raw, problem="an empty batch",
                    reply=error_line(None, INVALID_REQUEST, "Invalid Request: an empty batch"))
    problem = "a JSON-RPC batch (MCP dropped batches in 2025-06-18: send one message per line)"
    errors = []
    for item in items:
        if not isinstance(item, dict):
            errors.append(error_object(None, INVALID_REQUEST, "Invalid Request: not a message object"))
            continue
        owed = owed_error(item, message_problem(item) or problem)
        if owed is not None:
            errors.append(owed)
    return Line(raw, problem=problem, reply=encode(errors) if errors else b"")


def error_object(request_id: Any, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def error_line(request_id: Any, code: int, message: str) -> bytes:
    """One JSON-RPC error response, newline-terminated."""
    return encode(error_object(request_id, code, message))


def encode(value: Any) -> bytes:
    """A message (or batch) guardian writes: one line of compact JSON (ASCII: a lone surrogate in an
    echoed id stays an escape)."""
    return json.dumps(value, separators=(",", ":")).encode("ascii") + b"\n"
