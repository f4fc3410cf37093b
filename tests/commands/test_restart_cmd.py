"""`guardian restart` through the real CLI against a real control socket."""

import json

from guardian.runtime.control import ControlServer
from guardian.local.paths import StatePaths


def test_restart_without_a_sidecar_says_how_to_start_one(cli, plain_store):
    proc = cli("restart", "--store", str(plain_store))
    assert proc.returncode == 6
    assert proc.stderr_text.count("\n") == 1 and "start it with guardian run" in proc.stderr_text


def test_restart_asks_the_sidecar(cli, plain_store, state_dir):
    paths = StatePaths.for_store(plain_store, state_dir).ensure()
    calls = []

    def restart():
        calls.append("restart")
        return {"state": "starting", "restarts": 3}

    with ControlServer(paths.control_socket, {"restart": restart}):
        human = cli("restart", "--store", str(plain_store))
        as_json = cli("restart", "--store", str(plain_store), "--json")
    assert human.returncode == 0 and human.stdout_text == "restart requested; child state: starting\n"
    assert json.loads(as_json.stdout_text) == {"state": "starting", "restarts": 3}
    assert calls == ["restart", "restart"]


def test_a_refusal_from_the_sidecar_is_an_error(cli, plain_store, state_dir):
    paths = StatePaths.for_store(plain_store, state_dir).ensure()
    refuse = lambda: {"ok": False, "error": "this sidecar supervises no child"}  # noqa: E731
    with ControlServer(paths.control_socket, {"restart": refuse}):
        proc = cli("restart", "--store", str(plain_store))
    assert proc.returncode == 6 and "supervises no child" in proc.stderr_text and proc.stdout_text == ""
