"""`guardian mcp -- CMD ARGS...`: pre-flight + repair, then relay MCP stdio to CMD and stand in when it fails.

What an MCP client runs instead of ``contextd --mcp``. stdout belongs to the protocol: before
anything else guardian moves its own fd 1 onto stderr and keeps a private copy for the protocol,
so no stray print (guardian's, a library's) can ever reach the client.
"""

from __future__ import annotations

import os
import sys

from guardian.commands.exec_cmd import child_command, verdict_from_sidecar
from guardian.errors import ExitCode

SIDECAR_STREAM_TIMEOUT = 10.0  # to open the sidecar's fallback stream (it loads contextd's model first)

HELP = "pre-flight + repair, then relay MCP stdio to CMD; answer contextd's search tools while CMD loads or is down"


def add_arguments(parser) -> None:
    parser.add_argument("--answer-timeout", dest="answer_timeout", type=float,
                        help="seconds an unanswered request may wait before CMD counts as hung (default 30)")
    parser.add_argument("--no-early-answers", dest="early_answers", action="store_false", default=None,
                        help="while CMD loads, wait for it instead of answering initialize, tools/list and "
                             "searches from guardian's index (config: mcp_early_answers = false)")
    parser.add_argument("cmd", nargs="...", help="-- CMD ARGS... the MCP server to run (e.g. -- contextd --mcp)")


def claim_stdout() -> int:
    """A private duplicate of fd 1 for the protocol; fd 1 itself now points at stderr."""
    wire = os.dup(1)
    os.set_inheritable(wire, False)
    sys.stdout.flush()
    os.dup2(2, 1)
    return wire


def single_threaded_blas() -> dict:
    """Pin numpy's BLAS to one thread before numpy loads; returns the environment for the child.

    A fallback query is one matrix-vector product right after an onnxruntime run; a multi-threaded
    OpenBLAS spinning against onnxruntime made a 2,000-row product take 14 ms instead of 0.05 ms.
    The child gets the environment as it was.
    """
    child_env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    return child_env


def require_stdio() -> None:
    """stdin and stdout carry the protocol: a closed one (`<&-`, `>&-`) is a usage error, said
    before anything opens a file that would take its number."""
    from guardian.errors import UsageError

    for fd, name in ((0, "stdin"), (1, "stdout")):
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError(f"guardian mcp needs {name}: it is closed",
                             "run it from an MCP client's config (the client starts it with pipes on "
                             "stdin and stdout)") from None


def sidecar_stream(paths):
    """How a session opens its fallback stream in the sidecar guarding ``paths.store`` (see
    guardian.mcp.link); None from it when no sidecar runs for the store."""
    from guardian.mcp.link import SocketStream
    from guardian.runtime.control import connect, request_line

    def open_stream(caller):
        if not os.path.exists(paths.control_socket):
            return None
        request = request_line("mcp_fallback", store=str(paths.store), **caller.to_dict())
        return SocketStream.open(lambda: connect(paths.control_socket, SIDECAR_STREAM_TIMEOUT), request,
                                 SIDECAR_STREAM_TIMEOUT)

    return open_stream


def run(args, ctx) -> int:
    require_stdio()
    child_env = single_threaded_blas()
    cmd = child_command(args.cmd, "mcp")
    config = ctx.config
    if args.answer_timeout is not None:
        config = config.replace(mcp_answer_timeout=args.answer_timeout)
    if args.early_answers is not None:
        config = config.replace(mcp_early_answers=args.early_answers)
    wire_out = claim_stdout()
    from guardian.logs import get_logger
    from guardian.mcp.session import serve_session

    log = get_logger("guardian.mcp")

    def preflight():  # on the relay's thread pool: a sidecar guarding the store vouches for it (no walk)
        if not verdict_from_sidecar(ctx, log):
            from guardian.runtime.preflight import preflight_and_alert  # ~0.2 s: not before the first answer

            preflight_and_alert(config, ctx.paths, log)

    serve_session(cmd, config, ctx.paths, preflight=preflight, wire_in=0, wire_out=wire_out,
                  child_env=child_env, open_stream=sidecar_stream(ctx.paths))
    return ExitCode.OK  # the client ended the session; whatever CMD did meanwhile was handled
