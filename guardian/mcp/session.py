"""Wiring for one `guardian mcp` session: config -> relay, fallback server, answer source.

The answer source (:mod:`guardian.mcp.sources`) is prepared on a background thread while
contextd starts: the sidecar is asked whether it serves this store, else the session's own index
is mapped from the cache and contextd's model loaded, so the first answer does not wait for them;
a call made before that finishes waits for it (under a lock) instead of failing.
"""

from __future__ import annotations

from typing import Any, Callable

import anyio

from guardian.logs import get_logger
from guardian.mcp.fallback import FallbackServer
from guardian.mcp.relay import McpRelay, RelayOptions
from guardian.mcp.sources import Caller, LocalAnswers, SessionAnswers, SidecarAnswers
from guardian.mcp.tools import ToolCatalog
from guardian.restart import RestartPolicy

log = get_logger("guardian.mcp")


def relay_options(config) -> RelayOptions:
    return RelayOptions(answer_timeout=config.mcp_answer_timeout, start_timeout=config.mcp_start_timeout,
                        restart=RestartPolicy.from_config(config), stop_timeout=config.stop_timeout,
                        early=config.mcp_early_answers, early_grace=config.mcp_early_grace)


def session_answers(config, paths, ask_sidecar: Callable[..., Any] | None = None) -> SessionAnswers:
    """The sidecar's answers when ``ask_sidecar`` is given (the control socket's request), else
    only the session's own index."""
    caller = Caller.of(config.contextd_model, config.contextd_models_dir)
    sidecar = SidecarAnswers(ask_sidecar, str(paths.store), caller) if ask_sidecar is not None else None
    return SessionAnswers(LocalAnswers(config, paths, caller), sidecar)


def serve_session(cmd: list[str], config, paths, preflight, wire_in: int = 0, wire_out: int = 1,
                  child_env: dict | None = None, ask_sidecar: Callable[..., Any] | None = None) -> int:
    """One session. ``preflight()`` runs before every start of the child (handed in by the command);
    the restarts are spaced by the configured restart policy, as the supervisor's are."""
    try:
        paths.ensure()
        state_dir = paths.root
    except OSError as exc:
        log.error("mcp_state_dir_unavailable", error=str(exc))
        state_dir = None
    catalog = ToolCatalog(state_dir)
    answers = session_answers(config, paths, ask_sidecar)
    relay_box: list[McpRelay] = []
    fallback = FallbackServer(catalog, answers.answer,
                              reason=lambda: relay_box[0].reason if relay_box else "",
                              phase=lambda: relay_box[0].phase() if relay_box else "down")
    relay = McpRelay(cmd, relay_options(config), catalog, fallback,
                     preflight=preflight, wire_in=wire_in, wire_out=wire_out, env=child_env)
    relay_box.append(relay)
    answers.warm_up()
    return anyio.run(relay.run, backend="asyncio")
