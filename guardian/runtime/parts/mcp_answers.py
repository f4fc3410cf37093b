"""The sidecar serves `guardian mcp` sessions' fallbacks: one index and one contextd model for all of them.

Every MCP client session starts its own `guardian mcp` (and its own contextd). While a session's
contextd loads, or while it is down, the session answers contextd's read-only tools; with this part
its fallback MCP server runs here (``mcp_fallback``, a stream on the control socket, see
:mod:`guardian.mcp.link`) instead of holding the mcp SDK, an index and a model of its own
(``mcp_ready`` says whether this sidecar serves a store, and loads the model):
eight sessions cost one index, one model and one set of filter columns, all kept warm here.

The answers are made by the same code as a session's own (:func:`guardian.mcp.answers.answer`), over
the runtime's index, which the watcher keeps current (the searcher does no upkeep of its own), with
the model the session's contextd uses and the session's user for tenant names.
"""

from __future__ import annotations

import os
import threading

from guardian.errors import GuardianError, StoreError
from guardian.mcp.sources import Answer, Caller
from guardian.mcp.tools import ToolCatalog
from guardian.runtime.context import MCP_FALLBACK, MCP_READY
from guardian.runtime.parts import BasePart


class McpAnswersPart(BasePart):
    name = "mcp_answers"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._lock = threading.Lock()
        self._searchers: dict[tuple[str, str], object] = {}
        self.answered = 0

    def start(self) -> None:
        self.ctx.provide(MCP_READY, self.ready)
        self.ctx.provide(MCP_FALLBACK, self.fallback_stream)
        # the mcp SDK takes a second or two to import: not in the first session's first answer
        threading.Thread(target=_import_fallback, name="guardian-mcp-import", daemon=True).start()

    def ready(self, store: str = "", **caller) -> dict:
        """Whether this sidecar answers for ``store`` (loads the caller's model on the first call),
        and how many answers it gave so far."""
        self._searcher(store, Caller(**_caller_fields(caller)))
        return {"ready": True, "answered": self.answered}

    def fallback_stream(self, store: str = "", **caller):
        """``serve(rfile, wfile)``: one session's fallback MCP server, here, for the stream's life
        (refused, before the stream opens, for another store or while the index is being built)."""
        from guardian.mcp.fallback import serve_stream

        who = Caller(**_caller_fields(caller))
        searcher = self._searcher(store, who)
        catalog = ToolCatalog(self.ctx.paths.root)  # what the sessions learned from contextd
        self.ctx.log.info("mcp_fallback_stream_opened", model=who.model)
        return lambda rfile, wfile: serve_stream(
            rfile, wfile, catalog, lambda tool, arguments: self._answer(searcher, who, tool, arguments))

    def _answer(self, searcher, who: Caller, tool: str, arguments) -> Answer:
        from guardian.mcp import answers

        answer = answers.answer(searcher, tool, arguments, environ=who.environ())
        self.answered += 1
        return answer

    def _searcher(self, store: str, caller: Caller):
        index = self.ctx.index
        if not store or os.path.realpath(store) != str(self.ctx.paths.store):
            raise StoreError(f"this sidecar guards {self.ctx.paths.store}, not {store}",
                             "the session answers from its own index")
        if index is None or not index.built:
            raise GuardianError("the sidecar's index is still being built", "the session answers from its own index")
        key = (caller.model, caller.models_dir)
        with self._lock:
            searcher = self._searchers.get(key)
            if searcher is None:
                searcher = self._searchers[key] = self._make(index, caller)
        return searcher

    def _make(self, index, caller: Caller):
        from guardian.index.contextd_embed import contextd_embedder
        from guardian.mcp.answers import Searcher

        embedder, problem = contextd_embedder(caller.model, caller.models_dir, environ={})
        if embedder is None:
            self.ctx.log.warning("mcp_keyword_search_only", reason=problem)
        searcher = Searcher(index, embedder.embed_query if embedder else None, upkeep=False)
        threading.Thread(target=self._warm, args=(searcher,), name="guardian-mcp-filters", daemon=True).start()
        self.ctx.log.info("mcp_answers_ready", model=caller.model, semantic=embedder is not None)
        return searcher

    def _warm(self, searcher) -> None:
        try:
            searcher.warm_filters()
        except Exception as exc:  # the first search builds what is missing
            self.ctx.log.warning("mcp_filters_not_warmed", error=str(exc))


def _caller_fields(given: dict) -> dict:
    """The caller's fields a session sent (strings only; anything else is ignored)."""
    return {key: value for key, value in given.items() if key in Caller.__dataclass_fields__ and isinstance(value, str)}


def _import_fallback() -> None:
    import guardian.mcp.fallback  # noqa: F401
