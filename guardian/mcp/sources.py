"""What a fallback answer is made of, and a session's own answers when no sidecar serves it.

Every `guardian mcp` session answers contextd's read-only tools while contextd loads (and while it
is down). Eight sessions must not hold eight indexes and eight embedding models: with a `guardian
run` sidecar on the same store the session's fallback runs in the sidecar (:mod:`guardian.mcp.link`),
over its one index and model. Without one, the session answers from its own index of the store
(:class:`LocalAnswers`), mapped from the index cache in the state dir: no rebuild when the store is
unchanged, and the matrix and texts stay page cache, shared by every session of the same store.

:class:`Caller` is what an answer depends on besides the arguments, sent to the sidecar along with
the session's stream. This module imports nothing heavy: :mod:`guardian.mcp.answers` (numpy) and
the index are loaded only when the session's own index is used.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass


from guardian.index.contextd_model import model_name, models_dir
from guardian.logs import get_logger

log = get_logger("guardian.mcp")


class ToolError(Exception):
    """A tool call contextd would refuse: answered as an MCP tool error with this text."""


@dataclass
class Answer:
    structured: dict
    text: str
    source: str = "semantic"


@dataclass(frozen=True)
class Caller:
    """What the answer depends on besides the arguments: contextd's model (as this session's
    contextd would find it) and the user a tenant is derived from (``$USER``, ``~/.gitconfig``)."""

    model: str = ""
    models_dir: str = ""
    user: str = ""
    home: str = ""

    @classmethod
    def of(cls, configured_model: str, configured_dir: str, environ=os.environ) -> "Caller":
        return cls(model_name(configured_model, environ), str(models_dir(configured_dir, environ)),
                   environ.get("USER", ""), environ.get("HOME") or os.path.expanduser("~"))

    def environ(self) -> dict:
        return {key: value for key, value in (("USER", self.user), ("HOME", self.home)) if value}

    def to_dict(self) -> dict:
        return {"model": self.model, "models_dir": self.models_dir, "user": self.user, "home": self.home}


class LocalAnswers:
    """Answers from this session's own index (mapped from the cache) and contextd's model, both
    made once, on first need or in the background (:meth:`warm_up`), under a lock: a call made
    before they are ready waits for them instead of failing."""

    def __init__(self, config, paths, caller: Caller) -> None:
        self.config = config
        self.paths = paths
        self.caller = caller
        self._lock = threading.Lock()
        self._searcher = None
        self.model_problem = ""

    def searcher(self):
        with self._lock:
            if self._searcher is None:
                self._searcher = self._make()
            return self._searcher

    def _make(self):
        from guardian.index.contextd_embed import contextd_embedder
        from guardian.index.store_index import StoreIndex
        from guardian.mcp.answers import Searcher

        index = StoreIndex(self.config.store_path, compress=self.config.compress_flag,
                           cache_dir=self.paths.cache / "index")
        embedder, self.model_problem = contextd_embedder(self.caller.model, self.caller.models_dir, environ={})
        if embedder is None:
            log.warning("mcp_keyword_search_only", reason=self.model_problem)
        searcher = Searcher(index, embedder.embed_query if embedder else None)
        try:
            searcher.fresh()
        except Exception as exc:  # a missing store: answers will be empty, the session lives on
            log.error("mcp_index_unavailable", error=str(exc))
        else:
            searcher.warm_filters()
        return searcher

    def answer(self, tool: str, arguments: dict) -> Answer:
        from guardian.mcp import answers

        return answers.answer(self.searcher(), tool, arguments, environ=self.caller.environ())

    def warm_up(self) -> None:
        """Map the index and load contextd's model in the background, so the first answer does not wait."""
        threading.Thread(target=self._warm, name="guardian-mcp-index", daemon=True).start()

    def _warm(self) -> None:
        try:
            self.searcher()
        except Exception as exc:
            log.error("mcp_index_warm_up_failed", error=str(exc))
