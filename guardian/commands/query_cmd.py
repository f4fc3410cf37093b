"""`guardian query`: search a collection, through the running sidecar's HTTP API when there is one,
else straight from the store (with the index cache)."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from guardian.commands.output import format_table, print_json, require_store, state_dir_writable
from guardian.errors import ExitCode, QueryError, UsageError
from guardian.words import count

HELP = "search a collection by vector, document id (--like) or text, as chromem's QueryEmbedding does"
PROBE_TIMEOUT = 0.5


def add_arguments(parser) -> None:
    parser.add_argument("--collection", required=True, help="the collection's name")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--vector", help="the query embedding as a JSON list of numbers")
    source.add_argument("--vector-file", dest="vector_file", help="a file holding the JSON list ('-': stdin)")
    source.add_argument("--like", help="use this document's embedding (more like this)")
    source.add_argument("--text", help="embed this text with the configured embedder")
    parser.add_argument("-k", type=int, default=None, help="how many results (default: up to 10)")
    parser.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                        help="exact metadata match (repeatable; a missing key counts as '')")
    parser.add_argument("--contains", help="content must contain this text")
    parser.add_argument("--not-contains", dest="not_contains", help="content must not contain this text")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument("--direct", action="store_true", help="read the store even when a sidecar runs")


def run(args, ctx) -> int:
    body = request_body(args)
    answer = None if args.direct else ask_sidecar(ctx, args.collection, body)
    source = "sidecar"
    if answer is None:
        require_store(ctx, "search")
        answer, source = ask_store(ctx, args.collection, body), "store"
    if args.json:
        print_json(answer)
    else:
        print(render(answer))
    print(f"({count(len(answer['results']), 'result')} from the {source})", file=sys.stderr)
    return ExitCode.OK


def request_body(args) -> dict:
    body: dict = {}
    if args.vector is not None:
        body["vector"] = parse_vector(args.vector, "--vector")
    elif args.vector_file is not None:
        body["vector"] = parse_vector(read_vector_file(args.vector_file), args.vector_file)
    elif args.like is not None:
        body["like"] = args.like
    else:
        body["text"] = args.text
    if args.k is not None:
        body["k"] = args.k
    if args.where:
        body["where"] = dict(parse_where(item) for item in args.where)
    where_document = {}
    if args.contains is not None:
        where_document["$contains"] = args.contains
    if args.not_contains is not None:
        where_document["$not_contains"] = args.not_contains
    if where_document:
        body["where_document"] = where_document
    return body


def parse_vector(text: str, source: str) -> list:
    try:
        value = json.loads(text, parse_constant=lambda name: float(name.lower().replace("infinity", "inf")))
    except ValueError as exc:
        raise UsageError(f"{source} is not a JSON list of numbers: {exc}", 'e.g. --vector "[0.1, -0.2]"') from None
    if isinstance(value, dict) and "vector" in value:
        value = value["vector"]
    if not isinstance(value, list):
        raise UsageError(f"{source} must hold a JSON list of numbers", 'e.g. [0.1, -0.2, 0.3]')
    return value


def read_vector_file(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}",
                         "pass a readable file holding a JSON list") from None


def parse_where(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UsageError(f"--where {item!r} is not KEY=VALUE", "e.g. --where tenant_id=alice")
    return key, value


# ---------------------------------------------------------------------- through the sidecar


def sidecar_urls(ctx) -> list[str]:
    """Where a sidecar for this store may listen: its status file first, then the configured port."""
    from guardian.runtime.status import StatusFile, sidecar_part

    urls = []
    sidecar = sidecar_part(StatusFile(ctx.paths.status_file).read(), time.time(), _pid_alive)
    http = sidecar.get("http") if sidecar.get("running") else None
    if isinstance(http, dict) and http.get("port"):
        urls.append(f"http://{http.get('host') or '127.0.0.1'}:{http['port']}")
    configured = f"http://{ctx.config.http_host}:{ctx.config.http_port}"
    if ctx.config.http_port and configured not in urls:
        urls.append(configured)
    return urls


def _pid_alive(pid: int) -> bool:
    from guardian.runtime.status import default_pid_alive

    return default_pid_alive(pid)


def ask_sidecar(ctx, collection: str, body: dict) -> dict | None:
    """The sidecar's answer, or None when no sidecar for this store answers."""
    from urllib.parse import quote

    token = ctx.config.http_token
    for url in sidecar_urls(ctx):
        if not serves_this_store(url, ctx, token):
            continue
        status, answer = http_json(f"{url}/v1/collections/{quote(collection, safe='')}/query", body, token,
                                   timeout=60)
        if status is None:
            continue
        if status >= 400:
            raise QueryError(answer.get("error", f"HTTP {status}"), answer.get("hint"), status=status)
        return answer
    return None


def serves_this_store(url: str, ctx, token: str) -> bool:
    status, answer = http_json(f"{url}/v1/status", None, token, timeout=PROBE_TIMEOUT)
    if status != 200 or not isinstance(answer, dict):
        return False
    index = answer.get("index") or {}
    served = answer.get("store_path") or index.get("store")
    return served is not None and Path(served).resolve() == Path(ctx.paths.store).resolve()


def http_json(url: str, body: dict | None, token: str, timeout: float):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, {}
    except (urllib.error.URLError, OSError, ValueError):
        return None, None


# ---------------------------------------------------------------------- straight from the store


def ask_store(ctx, collection: str, body: dict) -> dict:
    from guardian.commands.serve_cmd import build_index
    from guardian.index import query as q
    from guardian.index.embed import embedder_from_config

    request = q.parse_request(body)
    writable = state_dir_writable(ctx.paths, "searching without the index cache")
    failed: list[OSError] = []
    index = build_index(ctx.config, ctx.paths, use_cache=writable, on_cache_error=lambda _dir, exc: failed.append(exc))
    if failed:  # the answer stands; one line for the user, never a log line per collection
        exc = failed[0]
        print(f"note: the index cache was not written ({getattr(exc, 'filename', None) or ctx.paths.cache}: "
              f"{getattr(exc, 'strerror', None) or exc}); searching without it", file=sys.stderr)
    embedder = embedder_from_config(ctx.config) if request.texts else None
    answer = index.search(collection, request, embedder.embed if embedder else None)
    return {"collection": answer.collection.name, "results": answer.results[0]}


def render(answer: dict) -> str:
    rows = [(rank, r["id"], f"{r['similarity']:.6f}", snippet(r["content"]))
            for rank, r in enumerate(answer["results"], 1)]
    if not rows:
        return "no results"
    return format_table(("rank", "id", "similarity", "content"), rows)


def snippet(content: str, width: int = 60) -> str:
    flat = " ".join(content.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
