"""Where a session's search answers come from: the sidecar's index when one guards the store, else its own.

Every `guardian mcp` session answers contextd's read-only tools while contextd loads (and while it
is down). Eight sessions must not hold eight indexes and eight embedding models:

* with a `guardian run` sidecar on the same store, the session asks it over the control socket
  (``mcp_answer``): one index, one contextd model and one set of warm filter columns serve every
  session, and the session itself never imports numpy or onnxruntime;
* without one (or when it stops answering), the session answers from its own index of the store,
  mapped from the index cache in the state dir (no rebuild when the store is unchanged, and the
  matrix and texts stay page cache, shared by every session of the same store).

This module imports nothing heavy: :mod:`guardian.mcp.answers` (numpy) and the index are loaded
only when the session's own index is used.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from guardian.errors import GuardianError
from guardian.index.contextd_model import model_name, models_dir
from guardian.logs import get_logger

log = get_logger("guardian.mcp")

SIDECAR_RETRY_SECONDS = 30.0  # after a failure, the sidecar is asked again no sooner than this


class ToolError(Exception):
    """A tool call contextd would refuse: answered as an MCP tool error with this text."""


@dataclass
class Answer:
    structured: dict
    text: str
    source: str = "semantic"

    def to_dict(self) -> dict:
        return {"structured": self.structured, "text": self.text, "source": self.source}

    @classmethod
    def from_dict(cls, data: Any) -> "Answer":
        """The sidecar's answer (``to_dict``); a ``tool_error`` is raised as :class:`ToolError`."""
        if not isinstance(data, dict):
            raise GuardianError("the sidecar sent no answer", "is it an older guardian? restart the service")
        if isinstance(data.get("tool_error"), str):
            raise ToolError(data["tool_error"])
        if not isinstance(data.get("structured"), dict) or not isinstance(data.get("text"), str):
            raise GuardianError("the sidecar's answer has no structured content", "restart the service")
        return cls(data["structured"], data["text"], str(data.get("source") or "semantic"))


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


class SidecarAnswers:
    """Answers from a running sidecar: ``ask(command, **args)`` is the control socket's request
    (handed in by the command, which may import the runtime). Any failure but a tool error says
    "ask someone else" (GuardianError); the sidecar is then left alone for a while."""

    def __init__(self, ask: Callable[..., Any], store: str, caller: Caller,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ask = ask
        self.store = store
        self.caller = caller
        self.clock = clock
        self._failed_at: float | None = None

    @property
    def resting(self) -> bool:
        return self._failed_at is not None and self.clock() - self._failed_at < SIDECAR_RETRY_SECONDS

    def ready(self) -> bool:
        """Does a sidecar answer for this store now? (It loads contextd's model on this call.)"""
        try:
            self.ask("mcp_ready", store=self.store, **self.caller.to_dict())
        except GuardianError as exc:
            self._failed(exc)
            return False
        self._failed_at = None
        return True

    def answer(self, tool: str, arguments: dict) -> Answer:
        try:
            data = self.ask("mcp_answer", tool=tool, arguments=arguments, store=self.store, **self.caller.to_dict())
            answer = Answer.from_dict(data)
        except GuardianError as exc:
            self._failed(exc)
            raise
        self._failed_at = None
        return answer

    def _failed(self, exc: GuardianError) -> None:
        if self._failed_at is None:
            log.info("mcp_sidecar_not_used", reason=exc.message)
        self._failed_at = self.clock()


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


class SessionAnswers:
    """The sidecar when it answers for this store, else the session's own index."""

    def __init__(self, local: LocalAnswers, sidecar: SidecarAnswers | None = None) -> None:
        self.local = local
        self.sidecar = sidecar

    def answer(self, tool: str, arguments: dict) -> Answer:
        sidecar = self.sidecar
        if sidecar is not None and not sidecar.resting:
            try:
                return sidecar.answer(tool, arguments)
            except GuardianError:
                pass  # logged once by SidecarAnswers; this session's own index answers
        return self.local.answer(tool, arguments)

    def warm_up(self) -> None:
        """In the background: ask the sidecar whether it serves this store; if not, build (map)
        the session's own index and load contextd's model, so the first answer does not wait."""
        threading.Thread(target=self._warm, name="guardian-mcp-index", daemon=True).start()

    def _warm(self) -> None:
        try:
            if self.sidecar is not None and self.sidecar.ready():
                log.info("mcp_answers_from_sidecar")
                return
            self.local.searcher()
        except Exception as exc:
            log.error("mcp_index_warm_up_failed", error=str(exc))
