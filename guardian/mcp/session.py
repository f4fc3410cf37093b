"""Wiring for one `guardian mcp` session: config -> relay, fallback server, index, contextd's embedder.

The index and the embedding model are prepared on a background thread while contextd starts,
so a fallback answer does not wait for a cold build; a fallback call made before that finishes
waits for it (under a lock) instead of failing.
"""

from __future__ import annotations

import threading

import anyio

from guardian.index.contextd_embed import contextd_embedder
from guardian.logs import get_logger
from guardian.mcp.answers import Searcher
from guardian.mcp.fallback import FallbackServer
from guardian.mcp.relay import McpRelay, RelayOptions
from guardian.mcp.tools import ToolCatalog
from guardian.restart import RestartPolicy

log = get_logger("guardian.mcp")


class LazySearcher:
    """Builds the StoreIndex and loads contextd's model once, on first need or in the background."""

    def __init__(self, config, paths) -> None:
        self.config = config
        self.paths = paths
        self._lock = threading.Lock()
        self._searcher: Searcher | None = None
        self.model_problem = ""

    def __call__(self) -> Searcher:
        with self._lock:
            if self._searcher is None:
                self._searcher = self._make()
            return self._searcher

    def _make(self) -> Searcher:
        from guardian.index.store_index import StoreIndex  # ~190 ms: after the relay is up, in the background

        index = StoreIndex(self.config.store_path, compress=self.config.compress_flag,
                           cache_dir=self.paths.cache / "index")
        embedder, self.model_problem = contextd_embedder(self.config.contextd_model, self.config.contextd_models_dir)
        if embedder is None:
            log.warning("mcp_keyword_search_only", reason=self.model_problem)
        searcher = Searcher(index, embedder.embed_query if embedder else None)
        try:
            searcher.fresh()
        except Exception as exc:  # a missing store: answers will be empty, the session lives on
            log.error("mcp_index_unavailable", error=str(exc))
        return searcher

    def warm_up(self) -> None:
        threading.Thread(target=self._warm, name="guardian-mcp-index", daemon=True).start()

    def _warm(self) -> None:
        try:
            self()
        except Exception as exc:
            log.error("mcp_index_warm_up_failed", error=str(exc))


def relay_options(config) -> RelayOptions:
    return RelayOptions(answer_timeout=config.mcp_answer_timeout, start_timeout=config.mcp_start_timeout,
                        restart=RestartPolicy.from_config(config), stop_timeout=config.stop_timeout)


def serve_session(cmd: list[str], config, paths, preflight, wire_in: int = 0, wire_out: int = 1,
                  child_env: dict | None = None) -> int:
    """One session. ``preflight()`` runs before every start of the child (handed in by the command);
    the restarts are spaced by the configured restart policy, as the supervisor's are."""
    try:
        paths.ensure()
        state_dir = paths.root
    except OSError as exc:
        log.error("mcp_state_dir_unavailable", error=str(exc))
        state_dir = None
    catalog = ToolCatalog(state_dir)
    searcher = LazySearcher(config, paths)
    relay_box: list[McpRelay] = []
    fallback = FallbackServer(catalog, searcher, reason=lambda: relay_box[0].reason if relay_box else "")
    relay = McpRelay(cmd, relay_options(config), catalog, fallback,
                     preflight=preflight, wire_in=wire_in, wire_out=wire_out, env=child_env)
    relay_box.append(relay)
    searcher.warm_up()
    return anyio.run(relay.run, backend="asyncio")
