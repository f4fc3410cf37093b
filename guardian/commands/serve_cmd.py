"""`guardian serve`: the HTTP query API alone (no supervision), kept fresh by the store watcher."""

from __future__ import annotations

import sys

HELP = "serve the HTTP query API for the store (no supervision) until SIGTERM/SIGINT"


def add_arguments(parser) -> None:
    parser.add_argument("--port", type=int, help="TCP port on the host (default: http_port, 8765; 0 picks one)")
    parser.add_argument("--host", help="address to bind (default: http_host, 127.0.0.1)")
    parser.add_argument("--no-watch", dest="watch", action="store_false", default=None,
                        help="do not watch the store (the index is then refreshed every few seconds)")


def build_index(config, paths, use_cache: bool = True, on_cache_error=None):
    """The store's index, from the cache where files are unchanged; the cache is updated
    (``on_cache_error``: see StoreIndex.save_cache)."""
    from guardian.runtime.parts.index import open_index  # the index (~0.2 s), for `query` and `serve` only

    index = open_index(config, paths)
    if not use_cache:
        index.cache_dir = None  # a read-only state dir: search without writing the cache
    index.build()
    index.save_cache(on_error=on_cache_error)
    return index


def run(args, ctx) -> int:
    from guardian.runtime.assembly import assemble  # ~0.57 s: not for `guardian --help` (see run_cmd)

    config = ctx.config.replace(http_port=args.port if args.port is not None else ctx.config.http_port,
                                http_host=args.host or ctx.config.http_host)
    runtime = assemble(config, ctx.paths, guard=False, watch=args.watch)
    return runtime.run(on_started=announce)


def announce(runtime) -> None:
    url = runtime.part("http").url
    print(f"guardian: serving {runtime.ctx.config.store_path} on {url}", file=sys.stderr, flush=True)
