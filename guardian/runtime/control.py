"""The sidecar's control socket: JSON lines over an AF_UNIX stream socket in the state dir.

Request (one line):  ``{"command": "restart", "args": {...}}``
Answer (one line):   ``{"ok": true, "result": ...}`` or
                     ``{"ok": false, "error": "...", "hint": "...", "type": "RestoreError"}``

The sidecar runs ``ControlServer(path, {"restart": fn, "status": fn, ...})`` in a thread; CLI
commands call ``control_request(path, "restart")``. The socket file is 0600 inside the 0700 state
dir, so only this user can talk to it.

A *stream* command (``streams={"name": opener}``) keeps its connection: ``opener(**args)`` returns
``serve(rfile, wfile)`` (or raises: the usual error answer), the sidecar answers ``{"ok": true}``
and ``serve`` has the connection, on that connection's thread, until either side closes it
(`guardian mcp` sessions' fallback streams: see ``guardian.mcp.link``). :func:`connect` opens one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Any, Callable

from guardian import errors
from guardian.errors import GuardianError, SupervisorError
from guardian.logs import get_logger

MAX_LINE = 1 << 20
UNIX_PATH_LIMIT = 100  # sun_path is 104 (macOS) or 108 (Linux) bytes including the NUL
NOT_RUNNING_HINT = "is the sidecar running? start it with guardian run"


class SidecarUnavailable(SupervisorError):
    """Nobody answers on the control socket."""

    default_hint = NOT_RUNNING_HINT


@contextlib.contextmanager
def _short_address(path: Path):
    """An address for ``path`` short enough for sun_path (Linux: via /proc/self/fd/<dirfd>)."""
    text = os.fspath(path)
    if len(os.fsencode(text)) <= UNIX_PATH_LIMIT or not os.path.isdir("/proc/self/fd"):
        yield text
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _encode(message: dict) -> bytes:
    return (json.dumps(message, default=str) + "\n").encode("utf-8")


def _error_answer(exc: BaseException) -> dict:
    if isinstance(exc, GuardianError):
        return {"ok": False, "error": exc.message, "hint": exc.hint, "type": type(exc).__name__}
    return {"ok": False, "error": f"internal error {type(exc).__name__}: {exc}", "hint": "see the sidecar's log",
            "type": "GuardianError"}


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(MAX_LINE)
        if not line:
            return
        stream = self.server.control.stream_for(line)
        if stream is not None:
            stream(self.rfile, self.wfile)
            return
        answer = self.server.control.dispatch(line)
        with contextlib.suppress(OSError):
            self.wfile.write(_encode(answer))


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 128  # eight MCP sessions start at once: socketserver's 5 would refuse some (EAGAIN)

    def __init__(self, address: str, control: "ControlServer") -> None:
        self.control = control
        super().__init__(address, _Handler)


class ControlServer:
    """Serve ``handlers`` (name -> callable(**args) returning JSON-able data) on ``path``."""

    def __init__(self, path: str | os.PathLike, handlers: dict[str, Callable[..., Any]],
                 streams: dict[str, Callable[..., Callable]] | None = None) -> None:
        self.path = Path(path)
        self.handlers = {"ping": lambda: "pong", **handlers}
        self.streams = dict(streams or {})
        self.log = get_logger("guardian.runtime.control")
        self._server: _UnixServer | None = None
        self._thread: threading.Thread | None = None

    def dispatch(self, line: bytes) -> dict:
        """Answer one request line; never raises."""
        try:
            request = json.loads(line)
            command = request["command"]
            args = request.get("args") or {}
            if not isinstance(command, str) or not isinstance(args, dict):
                raise ValueError("command must be a string and args an object")
        except (ValueError, KeyError, TypeError) as exc:
            return _error_answer(errors.UsageError(f"malformed control request: {exc}"))
        handler = self.handlers.get(command)
        if handler is None:
            return _error_answer(errors.UsageError(
                f"the sidecar does not know the command {command!r}",
                f"known commands: {', '.join(sorted(self.handlers)) or 'none'}"))
        try:
            return {"ok": True, "result": handler(**args)}
        except Exception as exc:  # answered to the client, logged here
            self.log.warning("control_command_failed", command=command, error=str(exc))
            return _error_answer(exc)

    def stream_for(self, line: bytes) -> Callable | None:
        """How to serve a stream command's connection, or None when the line asks for no stream."""
        try:
            request = json.loads(line)
            opener = self.streams.get(request["command"])
            args = request.get("args") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if opener is None or not isinstance(args, dict):
            return None

        def serve(rfile, wfile) -> None:
            try:
                served = opener(**args)
            except Exception as exc:
                self.log.info("control_stream_refused", command=request["command"], error=str(exc))
                with contextlib.suppress(OSError):
                    wfile.write(_encode(_error_answer(exc)))
                return
            try:
                wfile.write(_encode({"ok": True, "result": None}))
            except OSError:
                return
            served(rfile, wfile)
        return serve

    def start(self) -> "ControlServer":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_socket()
        with _short_address(self.path) as address:
            old_umask = os.umask(0o177)
            try:
                self._server = _UnixServer(address, self)
            finally:
                os.umask(old_umask)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="guardian-control", daemon=True)
        self._thread.start()
        self.log.info("control_listening", path=str(self.path))
        return self

    def _remove_stale_socket(self) -> None:
        if not self.path.exists() and not self.path.is_symlink():
            return
        if not self.path.is_socket():
            raise SupervisorError(f"{self.path} exists and is not a socket",
                                  "move it away; guardian keeps only its own files in the state dir")
        try:
            control_request(self.path, "ping", timeout=1.0)
        except SidecarUnavailable:
            self.path.unlink()  # our own socket file left by a sidecar that died
            return
        except GuardianError:
            pass  # someone answered (even with an error): a sidecar is alive
        raise SupervisorError(f"another guardian sidecar already listens on {self.path}",
                              "stop it first (guardian status shows it), or use another --state-dir")

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = None

    def __enter__(self) -> "ControlServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def connect(path: str | os.PathLike, timeout: float) -> socket.socket:
    """A socket connected to the sidecar's control socket (the caller sends and closes);
    SidecarUnavailable when nobody listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    try:
        sock.settimeout(timeout)
        with _short_address(Path(path)) as address:
            while True:
                try:
                    sock.connect(address)
                    break
                except BlockingIOError:  # the listen queue is full (EAGAIN): the sidecar is busy accepting
                    if time.monotonic() > deadline:
                        raise socket.timeout("the sidecar's listen queue stayed full") from None
                    time.sleep(0.01)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError, socket.timeout) as exc:
        sock.close()
        raise SidecarUnavailable(f"no guardian sidecar answers on {path} ({exc.strerror or exc})") from None
    except OSError as exc:
        sock.close()
        raise SidecarUnavailable(f"cannot talk to the sidecar on {path}: {exc.strerror or exc}") from None
    return sock


def request_line(command: str, **args: Any) -> bytes:
    return _encode({"command": command, "args": args})


def control_request(path: str | os.PathLike, command: str, timeout: float = 30.0, answer_limit: int = MAX_LINE,
                    **args: Any) -> Any:
    """Send one command to the sidecar and return its result; raises GuardianError on failure.
    An answer longer than ``answer_limit`` bytes is cut there (and then refused as unreadable)."""
    path = Path(path)
    line = _encode({"command": command, "args": args})
    try:
        with connect(path, timeout) as sock:
            sock.sendall(line)
            answer = _read_line(sock, answer_limit)
    except socket.timeout:
        raise SupervisorError(f"the sidecar did not answer {command!r} within {timeout:g}s",
                              "it may be busy (a repair or restore); try again or see its log") from None
    except OSError as exc:
        raise SidecarUnavailable(f"cannot talk to the sidecar on {path}: {exc.strerror or exc}") from None
    return _result_or_raise(answer, command)


def _read_line(sock: socket.socket, limit: int = MAX_LINE) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > limit:
            break
    return b"".join(chunks)


def _result_or_raise(answer: bytes, command: str) -> Any:
    if not answer:
        raise SupervisorError(f"the sidecar closed the connection without answering {command!r}",
                              "see the sidecar's log")
    try:
        message = json.loads(answer)
    except ValueError:
        raise SupervisorError(f"the sidecar sent an unreadable answer to {command!r}",
                              "guardian and the sidecar may be different versions; restart the service") from None
    if message.get("ok"):
        return message.get("result")
    error_class = getattr(errors, str(message.get("type")), GuardianError)
    if not (isinstance(error_class, type) and issubclass(error_class, GuardianError)) or error_class in (
            errors.CodecError, errors.QueryError):
        error_class = GuardianError  # different constructor signatures: keep message + hint only
    raise error_class(str(message.get("error", "unknown error")), message.get("hint") or None)
