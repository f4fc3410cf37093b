"""`guardian serve`: the HTTP query API alone (no supervision), kept fresh by the store watcher."""

from __future__ import annotations

import signal
import sys
import threading

from guardian.local.catalog import Catalog
from guardian.logs import get_logger

HELP = "serve the HTTP query API for the store (no supervision) until SIGTERM/SIGINT"
log = get_logger("guardian.serve")


def add_arguments(parser) -> None:
    parser.add_argument("--port", type=int, help="TCP port on the host (default: http_port, 8765; 0 picks one)")
    parser.add_argument("--host", help="address to bind (default: http_host, 127.0.0.1)")
    parser.add_argument("--no-watch", dest="watch", action="store_false", default=None,
                        help="do not watch the store (the index is then refreshed every few seconds)")


def build_index(config, paths):
    """The store's index, from the cache where files are unchanged; the cache is updated."""
    from guardian.index.store_index import StoreIndex

    index = StoreIndex(config.store_path, config.compress_flag, paths.cache / "index",
                       Catalog(paths.catalog_file).names()).build()
    index.save_cache()
    return index


def run(args, ctx) -> int:
    from guardian.index.embed import embedder_from_config
    from guardian.server.http import GuardianHTTPServer
    from guardian.runtime.status_facts import collect_status

    config = ctx.config.replace(http_port=args.port if args.port is not None else ctx.config.http_port,
                                http_host=args.host or ctx.config.http_host)
    paths = ctx.paths.ensure()
    index = build_index(config, paths)
    server = GuardianHTTPServer(index, lambda: collect_status(config, paths), config,
                                embedder=embedder_from_config(config))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    watcher = start_watcher(config, index, args.watch)
    server.start()
    print(f"guardian: serving {config.store_path} on {server.url}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(2.0 if watcher is None else 60.0):
            index.refresh_all() if watcher is None else index.save_cache()
    finally:
        server.stop()
        if watcher is not None:
            watcher.stop()
        index.save_cache()
    return 0


def start_watcher(config, index, wanted: bool | None):
    if not (config.watch if wanted is None else wanted):
        return None
    from guardian.runtime.watcher import StoreWatcher

    return StoreWatcher(config.store_path, index.watch_handlers(), debounce=config.debounce_seconds,
                        compress=index.compress).start()
