"""The alert hook with a real command and a real HTTP server on 127.0.0.1."""

import http.server
import json
import sys
import threading

import pytest

from guardian.runtime.alerts import CHILD_FATAL, EVENTS, REPAIR_DONE, SNAPSHOT_FAILED, Alerter

RECORD = "import os, sys; open(sys.argv[1], 'w').write(sys.stdin.read() + chr(10) + os.environ['GUARDIAN_EVENT'])"


def recorder(path):
    return f'{sys.executable} -c "{RECORD}" {path}'


class Webhook:
    def __init__(self, status=200):
        self.received = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_the_command_gets_the_event_on_stdin_and_in_the_environment(tmp_path):
    out = tmp_path / "event.json"
    outcome = Alerter(recorder(out), store="/data/store", host="box").send(REPAIR_DONE, moved=3)
    stdin_text, env_text = out.read_text().split("\n", 1)
    event = json.loads(stdin_text)
    assert event == json.loads(env_text)
    assert event["event"] == "repair_done" and event["moved"] == 3
    assert event["store"] == "/data/store" and event["host"] == "box" and event["time"].endswith("+00:00")
    assert outcome.delivered and outcome.command is True and outcome.webhook is None


def test_the_webhook_gets_a_json_post():
    with Webhook() as hook:
        outcome = Alerter(webhook=hook.url, store="s").send(CHILD_FATAL, exit_code=1, command=["contextd"])
    path, content_type, event = hook.received[0]
    assert path == "/hook" and content_type == "application/json"
    assert event["event"] == "child_fatal" and event["exit_code"] == 1 and event["command"] == ["contextd"]
    assert outcome.delivered


def test_both_targets_are_used_when_both_are_configured(tmp_path):
    out = tmp_path / "event.json"
    with Webhook() as hook:
        outcome = Alerter(recorder(out), hook.url).send(SNAPSHOT_FAILED, error="disk full")
    assert json.loads(out.read_text().split("\n")[0])["error"] == "disk full"
    assert hook.received[0][2]["error"] == "disk full" and outcome.delivered


@pytest.mark.parametrize("command, expected", [
    ("/nonexistent/hook", "cannot run alert command"),
    (f'{sys.executable} -c "import sys; sys.exit(4)"', "exited 4"),
    (f'{sys.executable} -c "import time; time.sleep(5)"', "timed out"),
    ('unbalanced "quote', "cannot parse"),
])
def test_a_failing_command_is_reported_never_raised(command, expected):
    outcome = Alerter(command, timeout=0.5).send(CHILD_FATAL)
    assert not outcome.delivered and expected in outcome.command and outcome.errors


def test_a_failing_webhook_is_reported_never_raised():
    with Webhook(status=500) as hook:
        outcome = Alerter(webhook=hook.url).send(CHILD_FATAL)
    assert "HTTP 500" in outcome.webhook and not outcome.delivered
    unreachable = Alerter(webhook="http://127.0.0.1:9/none", timeout=1).send(CHILD_FATAL)
    assert "unreachable" in unreachable.webhook
    assert "unreachable" in Alerter(webhook="not a url").send(CHILD_FATAL).webhook


def test_nothing_configured_sends_nothing():
    alerter = Alerter()
    outcome = alerter.send(CHILD_FATAL)
    assert not alerter.configured and outcome.command is None and outcome.webhook is None
    assert not outcome.delivered and set(EVENTS) >= {CHILD_FATAL, REPAIR_DONE}


def test_unserialisable_fields_still_send(tmp_path):
    out = tmp_path / "event.json"
    outcome = Alerter(recorder(out)).send(CHILD_FATAL, path=tmp_path, odd={1, 2})
    event = json.loads(out.read_text().split("\n")[0])
    assert event["path"] == str(tmp_path) and outcome.command is True


def test_from_config(tmp_path):
    from guardian.config import Config

    alerter = Alerter.from_config(Config(store=str(tmp_path), alert_command="notify-send", alert_webhook="http://x"))
    assert alerter.command == "notify-send" and alerter.webhook == "http://x" and alerter.store == str(tmp_path)
