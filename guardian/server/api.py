"""The HTTP API's routes, independent of the transport: (method, path, headers, body) -> Response.

Routes (JSON in and out; errors are ``{"error": ..., "hint": ...}`` with a 4xx status):

    GET  /healthz                          alive (503 with the state when the child is FATAL)
    GET  /readyz                           index built and store loadable (else 503 + reasons)
    GET  /v1/status                        the same facts as `guardian status --json`
    GET  /metrics                          Prometheus text format
    GET  /v1/collections                   every indexed collection with counts and problems
    POST /v1/collections/{name}/query      chromem QueryEmbedding semantics (see guardian.index.query)
    GET  /v1/diff?from=&to=&collection=    `guardian diff --json` (no ``to``: to the store now)
    GET  /v1/memories/{id}/history?collection=         `guardian history ID --json`
    GET  /v1/memories/{id}?at=&collection=             `guardian show ID --json` (no ``at``: now)
    GET  /v1/find?text=&where=k=v&id=&collection=      `guardian find --json` (``where`` repeats)

    GET  /console/...                      the console's pages (``guardian.server.console``)

Who may ask what is decided in one place, :class:`guardian.server.access.Access`: a ``Host`` that
names this server, no request from another site but a link followed to a page, and with a bearer
token configured, ``Authorization: Bearer <token>`` on every route but /healthz and /readyz (else
401); the console's own rules are there too. A transport calls :meth:`Api.screen` with the request
line and headers first and reads a body only when it answers None, so that no body is read for a
request that is refused anyway (wrong token, wrong method, unknown route).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from guardian.errors import GuardianError, NoStoreYet, QueryError, UsageError
from guardian.index import query as q
from guardian.logs import get_logger
from guardian.server.access import Access
from guardian.server.metrics import Metrics

MAX_BODY = 16 * 1024 * 1024
MAX_ERROR_CHARS = 300  # one line: an error quoting a huge value is cut
JSON_TYPE = "application/json"
OPEN_ROUTES = ("/healthz", "/readyz")
ROUTES = {"/healthz": "healthz", "/readyz": "readyz", "/v1/status": "status", "/metrics": "render_metrics",
          "/v1/collections": "list_collections"}  # GET path -> method; queries are POST /v1/collections/{name}/query
NESTING_HINT = 'send a flat JSON object such as {"vector": [numbers], "k": 5}'
log = get_logger("guardian.server")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, data: Any, headers: tuple = ()) -> Response:
    return Response(status, (json.dumps(data, default=str) + "\n").encode("utf-8"), JSON_TYPE, headers)


def query_response(data: dict, finite: bool) -> Response:
    """A query's answer: orjson's bytes (a tenth of json.dumps's time for k results), else json.dumps's.

    Both write the same JSON values (orjson's text is UTF-8 where json.dumps escapes non-ASCII).
    json.dumps answers what orjson cannot write as json.dumps would: a string holding a lone
    surrogate (a Go string's bytes that are not UTF-8, kept by surrogateescape) and, ``finite``
    False, a NaN or infinite similarity (orjson would write null, json.dumps writes NaN)."""
    if finite:
        try:
            return Response(200, orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE), JSON_TYPE)
        except orjson.JSONEncodeError:
            pass
    return json_response(200, data)


def error_response(status: int, message: str, hint: str = "", headers: tuple = ()) -> Response:
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + "..."
    return json_response(status, {"error": message, "hint": hint}, headers)


class Api:
    """Routes requests to the index, the status and health providers and the metrics."""

    def __init__(self, index, status_provider: Callable[[], dict] | None = None,
                 metrics: Metrics | None = None, token: str = "",
                 health_provider: Callable[[], dict] | None = None,
                 ready_provider: Callable[[], tuple[bool, str]] | None = None,
                 embedder: Any = None, memories: Any = None, access: Access | None = None,
                 console: Any = None) -> None:
        self.index = index
        self.status_provider = status_provider
        self.metrics = metrics or Metrics()
        self.token = token
        self.health_provider = health_provider
        self.ready_provider = ready_provider
        self.embedder = embedder
        self.memories = memories   # a guardian.memories.browser.MemoryBrowser (duck-typed: server is below memories)
        self.access = access or Access(token, "127.0.0.1", lambda: None)
        self.console = console     # a guardian.server.console.Console, or None (no pages)

    def screen(self, method: str, target: str, headers: Mapping[str, str]) -> Response | None:
        """The answer a request gets before its body is read (401, 403, 404, 405, 421), or None to go on."""
        path = urlsplit(target).path
        console = self.console is not None and self.console.handles(path)
        verdict = self.access.screen(method, path, headers, console=console, open_route=path in OPEN_ROUTES)
        if verdict.refused:
            if console:
                return self.console.refusal(verdict)
            extra = (("WWW-Authenticate", "Bearer"),) if verdict.status == 401 else ()
            return error_response(verdict.status, verdict.message, verdict.hint, extra)
        if console:
            return self.console.refuse_method(method, path)
        return self._refuse_method(method, path)

    def wants_body(self, method: str, target: str) -> bool:
        """Queries and the console's forms read a body; every other route answers without one."""
        path = urlsplit(target).path
        if self.console is not None and self.console.handles(path):
            return method == "POST"
        return method == "POST" and collection_from_path(path) is not None


    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        path = urlsplit(target).path
        refused = self.screen(method, target, headers)
        if refused is not None:
            return refused
        if self.console is not None and self.console.handles(path):
            return self.console.answer(method, target, headers, body)
        try:
            return self._route(method, target, body)
        except QueryError as exc:
            self.metrics.count_error(exc.status)
            return error_response(exc.status, exc.message, exc.hint)
        except GuardianError as exc:
            self.metrics.count_error(503)
            return error_response(503, exc.message, exc.hint)
        except RecursionError:  # hostile nesting that got past parse_json (e.g. in a repr)
            self.metrics.count_error(400)
            return error_response(400, "the request nests too deeply", NESTING_HINT)
        except OverflowError as exc:  # e.g. 10**400 in a vector: Python's int does not fit a float
            self.metrics.count_error(400)
            return error_response(400, f"a number in the request is out of range ({exc})",
                                  "send numbers within float32 range")
        except Exception as exc:  # a bug: answer 500 with a one-line reason, log the details
            log.exception("request_failed", path=path)
            return error_response(500, f"internal error {type(exc).__name__}: {exc}", "report this bug")

    def _refuse_method(self, method: str, path: str) -> Response | None:
        if path in ROUTES or memory_route(path) is not None:
            if method != "GET":
                return error_response(405, f"{path} answers GET only", "use GET", (("Allow", "GET"),))
            return None
        if collection_from_path(path) is not None:
            if method != "POST":
                return error_response(405, "queries are POSTed", "use POST with a JSON body", (("Allow", "POST"),))
            return None
        return error_response(404, f"no route {path}", "see /v1/collections and README's API section")

    def _route(self, method: str, target: str, body: bytes) -> Response:
        path = urlsplit(target).path
        if path in ROUTES:
            return getattr(self, ROUTES[path])()
        memory = memory_route(path)
        if memory is not None:
            return self.memory_answer(*memory, parse_qs(urlsplit(target).query, keep_blank_values=True))
        return self.query(collection_from_path(path), body)

    # ------------------------------------------------------------------ routes

    def healthz(self) -> Response:
        health = dict(self.health_provider() if self.health_provider else {"healthy": True})
        healthy = health.get("healthy", True) is not False
        health["healthy"] = healthy
        return json_response(200 if healthy else 503, health)

    def readyz(self) -> Response:
        reasons = []
        if not self.index.built:
            reasons.append("the index is not built yet")
        loadable, why = self.ready_provider() if self.ready_provider else (self.index.clean, "")
        if not loadable:
            reasons.append(why or "the store would not load in chromem (a damaged collection or document)")
        return json_response(503 if reasons else 200, {"ready": not reasons, "reasons": reasons})

    def status(self) -> Response:
        data = dict(self.status_provider()) if self.status_provider else {}
        data.setdefault("index", self.index.summary())
        return json_response(200, data)

    def render_metrics(self) -> Response:
        self.metrics.set_index(self.index)
        return Response(200, self.metrics.render(), self.metrics.content_type)

    def list_collections(self) -> Response:
        summaries = []
        for name, collection in sorted(self.index.collections().items()):
            summary = collection.summary()
            summary["problems"] = summary["problems"][:20]
            summaries.append(summary)
        return json_response(200, {"collections": summaries})

    def query(self, name: str, body: bytes) -> Response:
        request = q.parse_request(parse_json(body))
        started = time.perf_counter()
        answer = self.index.search(name, request, self._embed if request.texts else None)
        self.metrics.observe_query(time.perf_counter() - started)
        finite = all(math.isfinite(hit["similarity"]) for hits in answer.results for hit in hits)
        results = answer.results if request.batch else answer.results[0]
        return query_response({"collection": answer.collection.name, "results": results}, finite)

    def memory_answer(self, route: str, memory_id: str | None, params: dict[str, list[str]]) -> Response:
        """The same answer as the CLI's --json: 400 for a bad request, 404 when it is not there."""
        if self.memories is None:
            return error_response(503, "this server does not answer about memories", "use `guardian run` or `serve`")

        def one(name: str) -> str | None:
            values = params.get(name)
            return values[-1] if values else None

        try:
            if route == "diff":
                if not one("from"):
                    raise UsageError("from is missing", "GET /v1/diff?from=TIME|ID[&to=TIME|ID][&collection=NAME]")
                data = self.memories.diff(one("from"), one("to") or None, one("collection")).to_dict()
            elif route == "history":
                data = self.memories.history(memory_id, one("collection")).to_list()
            elif route == "show":
                data = self.memories.show(memory_id, one("at") or None, one("collection")).to_dict()
            else:
                data = self.memories.find(one("text") or None, params.get("where", []), one("id") or None,
                                          one("collection")).to_dict()
        except GuardianError as exc:
            status = getattr(exc, "http_status", None) or \
                (404 if isinstance(exc, NoStoreYet) else 400 if isinstance(exc, UsageError) else 503)
            self.metrics.count_error(status)
            return error_response(status, exc.message, exc.hint)
        return json_response(200, data)

    def _embed(self, texts: list[str]):
        if self.embedder is None:
            raise QueryError("text queries need an embedder", "set embed_url or embed_model_dir in config.toml")
        return self.embedder.embed(texts)


def collection_from_path(path: str) -> str | None:
    prefix, suffix = "/v1/collections/", "/query"
    if path.startswith(prefix) and path.endswith(suffix) and len(path) > len(prefix) + len(suffix):
        return unquote(path[len(prefix):-len(suffix)])
    return None


def memory_route(path: str) -> tuple[str, str | None] | None:
    """("diff" | "find", None) or ("history" | "show", memory id) for the memory routes, else None."""
    if path in ("/v1/diff", "/v1/find"):
        return path[4:], None
    prefix = "/v1/memories/"
    if not path.startswith(prefix) or len(path) == len(prefix):
        return None
    rest = path[len(prefix):]
    if rest.endswith("/history") and len(rest) > len("/history"):
        return "history", unquote(rest[:-len("/history")])
    return ("show", unquote(rest)) if "/" not in rest else None


def parse_json(body: bytes) -> Any:
    """The body's JSON value: orjson's (a 384-float vector in a tenth of json.loads's time), or, for
    any body orjson refuses, json.loads's value or error, so that what was accepted before still is
    (NaN and Infinity, lone surrogate escapes, numbers past float64, nesting past 1024) and every
    error reads as it did. The two agree on every body both accept but two: an integer past 64 bits
    is the nearest float for orjson, an int for json (in a vector the same float32 either way; as k
    refused either way, 400, in other words), and nesting 1000 to 1024 deep, which orjson reads and
    json refuses (no query nests that deep: 400 either way, in other words).
    """
    if not body:
        raise QueryError("the request body is empty", 'send a JSON object, e.g. {"vector": [...]}')
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body.decode("utf-8"))
    except RecursionError:
        raise QueryError("the request body nests too deeply", NESTING_HINT) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise QueryError(f"the request body is not valid JSON: {exc}", "send a JSON object") from None
