"""The control socket with a real AF_UNIX server in a thread and the real client."""

import os
import socket
import stat
import threading

import pytest

from guardian.runtime.control import ControlServer, SidecarUnavailable, control_request
from guardian.errors import GuardianError, RestoreError, SupervisorError, UsageError


def test_request_and_answer_round_trip(tmp_path):
    calls = []

    def restart():
        calls.append("restart")
        return {"state": "starting"}

    with ControlServer(tmp_path / "control.sock", {"restart": restart, "echo": lambda **kw: kw}):
        assert control_request(tmp_path / "control.sock", "restart") == {"state": "starting"}
        assert control_request(tmp_path / "control.sock", "echo", snapshot="abc", n=2) == {"snapshot": "abc", "n": 2}
        assert control_request(tmp_path / "control.sock", "ping") == "pong"
    assert calls == ["restart"]
    assert not (tmp_path / "control.sock").exists()  # removed on stop


def test_the_socket_is_private(tmp_path):
    with ControlServer(tmp_path / "c.sock", {}):
        mode = os.stat(tmp_path / "c.sock").st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) & 0o077 == 0


def test_handler_errors_come_back_as_the_same_guardian_error(tmp_path):
    def restore(snapshot):
        raise RestoreError(f"snapshot {snapshot} is damaged", "pick another one (guardian snapshots)")

    with ControlServer(tmp_path / "c.sock", {"restore": restore, "boom": lambda: 1 / 0}):
        with pytest.raises(RestoreError) as info:
            control_request(tmp_path / "c.sock", "restore", snapshot="s1")
        assert info.value.message == "snapshot s1 is damaged" and "guardian snapshots" in info.value.hint
        with pytest.raises(GuardianError, match="internal error ZeroDivisionError"):
            control_request(tmp_path / "c.sock", "boom")
        with pytest.raises(UsageError, match="does not know the command 'nope'") as info:
            control_request(tmp_path / "c.sock", "nope")
        assert "restart" not in info.value.hint and "ping" in info.value.hint


def test_malformed_requests_get_an_error_answer(tmp_path):
    with ControlServer(tmp_path / "c.sock", {}):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(tmp_path / "c.sock"))
            sock.sendall(b"not json\n")
            answer = sock.makefile("rb").readline()
    assert b'"ok": false' in answer and b"malformed" in answer


def test_nobody_listening_raises_with_the_hint(tmp_path):
    with pytest.raises(SidecarUnavailable) as info:
        control_request(tmp_path / "missing.sock", "restart")
    assert "guardian run" in info.value.one_line()


def test_a_stale_socket_file_is_replaced_but_a_live_one_is_refused(tmp_path):
    path = tmp_path / "c.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: like a sidecar that was killed
    with pytest.raises(SidecarUnavailable):
        control_request(path, "ping")
    with ControlServer(path, {}):
        assert control_request(path, "ping") == "pong"
        with pytest.raises(SupervisorError, match="already listens"):
            ControlServer(path, {}).start()


def test_a_long_state_dir_path_still_works(tmp_path):
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True)
    path = deep / "control.sock"
    assert len(str(path)) > 108
    with ControlServer(path, {"status": lambda: {"state": "running"}}):
        assert control_request(path, "status") == {"state": "running"}


def test_concurrent_clients_are_served(tmp_path):
    gate = threading.Event()
    with ControlServer(tmp_path / "c.sock", {"slow": lambda: gate.wait(5), "fast": lambda: "done"}):
        slow = threading.Thread(target=control_request, args=(tmp_path / "c.sock", "slow"))
        slow.start()
        assert control_request(tmp_path / "c.sock", "fast", timeout=5) == "done"
        gate.set()
        slow.join(5)
        assert not slow.is_alive()


def test_a_stream_command_keeps_its_connection(tmp_path):
    """``streams``: the sidecar says ok, then the connection is the opener's (a guardian mcp session's
    fallback stream); an opener that refuses answers the usual error; many at once all connect."""
    from guardian.runtime.control import connect, request_line

    def opener(prefix: str = ""):
        if prefix == "refuse":
            raise SupervisorError("not this store", "use your own index")

        def serve(rfile, wfile):
            for line in iter(rfile.readline, b""):
                wfile.write(prefix.encode() + line)
        return serve

    path = tmp_path / "c.sock"
    with ControlServer(path, {}, streams={"echo": opener}):
        socks = [connect(path, 30) for _ in range(40)]  # more than socketserver's default listen queue
        try:
            for n, sock in enumerate(socks):
                sock.sendall(request_line("echo", prefix=f"{n}:"))
            for n, sock in enumerate(socks):
                reader = sock.makefile("rb")
                assert reader.readline() == b'{"ok": true, "result": null}\n'
                sock.sendall(b"one\ntwo\n")
                assert [reader.readline(), reader.readline()] == [f"{n}:one\n".encode(), f"{n}:two\n".encode()]
        finally:
            for sock in socks:
                sock.close()
        with connect(path, 30) as sock:
            sock.sendall(request_line("echo", prefix="refuse"))
            answer = sock.makefile("rb").readline()
        assert b'"ok": false' in answer and b"not this store" in answer
        assert control_request(path, "ping") == "pong"  # plain requests still answered
