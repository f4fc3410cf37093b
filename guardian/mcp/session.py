"""Wiring for one `guardian mcp` session: config -> relay, fallback link, answer source.

The fallback server runs in the sidecar when one guards the store (``open_stream``, handed in by
the command: the control socket is the runtime's); else it is made here, and then the session's
own index is mapped and contextd's model loaded on a background thread, so the first answer does
not wait for a cold start (a call made before that finishes waits for it instead of failing).
"""

from __future__ import annotations

from typing import Callable

import anyio

from guardian.logs import get_logger
from guardian.mcp.link import DOWN, FallbackLink, Stream
from guardian.mcp.relay import McpRelay, RelayOptions
from guardian.mcp.sources import Caller, LocalAnswers
from guardian.mcp.tools import ToolCatalog
from guardian.restart import RestartPolicy

log = get_logger("guardian.mcp")


def relay_options(config) -> RelayOptions:
    return RelayOptions(answer_timeout=config.mcp_answer_timeout, start_timeout=config.mcp_start_timeout,
                        restart=RestartPolicy.from_config(config), stop_timeout=config.stop_timeout,
                        early=config.mcp_early_answers, early_grace=config.mcp_early_grace)


def serve_session(cmd: list[str], config, paths, preflight, wire_in: int = 0, wire_out: int = 1,
                  child_env: dict | None = None,
                  open_stream: Callable[[Caller], Stream | None] | None = None) -> int:
    """One session. ``preflight()`` runs before every start of the child (handed in by the command);
    the restarts are spaced by the configured restart policy, as the supervisor's are.
    ``open_stream(caller)`` opens the sidecar's fallback stream (None or an error: no sidecar)."""
    try:
        paths.ensure()
        state_dir = paths.root
    except OSError as exc:
        log.error("mcp_state_dir_unavailable", error=str(exc))
        state_dir = None
    catalog = ToolCatalog(state_dir)
    caller = Caller.of(config.contextd_model, config.contextd_models_dir)
    relay_box: list[McpRelay] = []

    def phase() -> str:
        return relay_box[0].phase() if relay_box else DOWN

    def reason() -> str:
        return relay_box[0].reason if relay_box else ""

    def make_server():  # imports the mcp SDK: on a thread, only when no sidecar serves the session
        answers = LocalAnswers(config, paths, caller)
        answers.warm_up()  # first: the listing and the model load run without the GIL, beside the import
        from guardian.mcp.fallback import FallbackServer

        return FallbackServer(catalog, answers.answer, reason=reason, phase=phase)

    link = FallbackLink(make_server, (lambda: open_stream(caller)) if open_stream else None, phase, reason)
    relay = McpRelay(cmd, relay_options(config), catalog, link,
                     preflight=preflight, wire_in=wire_in, wire_out=wire_out, env=child_env)
    relay_box.append(relay)
    return anyio.run(relay.run, backend="asyncio")
