"""`guardian run [-- CMD ARGS...]`: the sidecar. With CMD it supervises it; without, it serves searches."""

from __future__ import annotations

HELP = "run the sidecar: pre-flight + repair, snapshots, watcher, HTTP API, then supervise CMD (or serve)"


def add_arguments(parser) -> None:
    parser.add_argument("--port", type=int, help="HTTP port (default from config: 8765; 0 picks a free one)")
    parser.add_argument("--host", help="HTTP address (default 127.0.0.1)")
    parser.add_argument("cmd", nargs="...", help="-- CMD ARGS... the server to supervise (e.g. -- contextd)")


def run(args, ctx) -> int:
    # every part and what it needs (~0.57 s of imports at load 5): `guardian --help` imports this module
    from guardian import logs
    from guardian.runtime.assembly import assemble

    config = ctx.config
    if args.port is not None or args.host:
        config = config.replace(http_port=args.port if args.port is not None else config.http_port,
                                http_host=args.host or config.http_host)
    logs.configure(level=config.log_level, log_file=config.log_file or None)
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else list(args.cmd)
    return assemble(config, ctx.paths, cmd).run()
