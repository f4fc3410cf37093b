"""Where a client message goes while contextd starts: answered by guardian now, or kept for contextd.

contextd loads its model and the whole store before it answers anything (a minute on a large
store). Meanwhile guardian answers what it can answer exactly as contextd would: the handshake,
``ping``, ``tools/list`` (contextd's own list, learned earlier) and the read-only search tools
(from the same store). Everything else — a write tool, a tool guardian does not serve, any other
method, a notification contextd must see — is kept, in the order it came, and sent to contextd
once it has answered the client's ``initialize``; or, when contextd does not come up, answered by
the fallback with an error that says nothing was done. A ``notifications/cancelled`` naming a kept
request removes it: the client gave up on it, so contextd never runs it.

Pure rules, no I/O: :class:`guardian.mcp.relay.McpRelay` applies them.
"""

from __future__ import annotations

from guardian.mcp import wire
from guardian.mcp.tools import SERVED_TOOLS

ANSWER, KEEP, CANCEL, DROP = "answer", "keep", "cancel", "drop"
ANSWERED_METHODS = frozenset({"initialize", "notifications/initialized", "ping", "tools/list"})


def route(message: dict) -> str:
    """What to do with one client message while contextd starts (see the module docstring)."""
    method = message.get("method")
    if method is None:
        return DROP  # a response: guardian asked the client nothing
    if method in ANSWERED_METHODS:
        return ANSWER
    if method == "tools/call":
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        # a call the SDK cannot read (no name, params of the wrong shape) is answered with its error now
        return ANSWER if name in SERVED_TOOLS or not isinstance(name, str) else KEEP
    if method == "notifications/cancelled":
        return CANCEL
    return KEEP


def cancelled_id(message: dict):
    """The request a ``notifications/cancelled`` names (its ``requestId``), or None."""
    params = message.get("params")
    request_id = params.get("requestId") if isinstance(params, dict) else None
    return request_id if wire.valid_id(request_id) else None


def without_request(kept: list[tuple[bytes, dict]], request_id) -> tuple[list[tuple[bytes, dict]], bool]:
    """``kept`` without the request of this id (the first one kept), and whether there was one."""
    key = wire.id_key(request_id)
    for at, (_line, message) in enumerate(kept):
        if wire.is_request(message) and wire.id_key(message["id"]) == key:
            return kept[:at] + kept[at + 1:], True
    return kept, False
