"""The relay at the byte level: real `guardian mcp` process, a raw child that records its bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from tests.mcp_relay.conftest import ROOT
from tests.waiting import wait_for

RAW_CHILD = os.path.join(os.path.dirname(__file__), "raw_child.py")
REQUESTS = [
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},'
    b'"clientInfo":{"name":"t","version":"1"}}}\n',
    b'{ "jsonrpc" : "2.0" , "method":"notifications/initialized" }\n',
    '{"id":"a\u00e9","jsonrpc":"2.0","method":"tools/call","params":{"name":"memory_search","arguments":'
    '{"project_id":"p","query":"caf\u00e9 \\u00e9"}}}\n'.encode("utf-8"),
    b'{"jsonrpc":"2.0","id":3,"method":"ping"}\n',
]


def start(tmp_path, extra_env: dict | None = None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), GUARDIAN_STATE_DIR=str(tmp_path / "state"),
               GUARDIAN_CONFIG=str(tmp_path / "none.toml"), GUARDIAN_LOG_LEVEL="debug",
               GUARDIAN_MCP_EARLY_GRACE="120",  # the raw child answers initialize: no early answers
               EMBEDDINGS_CACHE_DIR=str(tmp_path / "no-models"), **(extra_env or {}))
    cmd = [sys.executable, "-m", "guardian", "mcp", "--store", str(tmp_path / "store"), "--log-level", "debug",
           "--", sys.executable, RAW_CHILD, str(tmp_path / "received"), str(tmp_path / "sent")]
    (tmp_path / "store").mkdir()
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_lines_pass_through_byte_exact_and_stdout_is_protocol_only(tmp_path):
    proc = start(tmp_path)
    stderr = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
    reader.start()
    got = []
    try:
        for request in REQUESTS:
            proc.stdin.write(request)
            proc.stdin.flush()
            if b'"id"' in request:
                got.append(proc.stdout.readline())  # the notification
                got.append(proc.stdout.readline())  # the answer
        wait_for(lambda: (tmp_path / "received").read_bytes().count(b"\n") >= len(REQUESTS), 60,
                 what="the child to receive every request")
    finally:
        proc.stdin.close()
        rest = proc.stdout.read()
        proc.wait(timeout=60)
        reader.join(timeout=60)
    received = (tmp_path / "received").read_bytes().splitlines(keepends=True)
    guardians = [line for line in received if b'"id": "io.guardian/' in line or b'"id":"io.guardian/' in line]
    assert [line for line in received if line not in guardians] == REQUESTS  # client -> child: untouched
    assert [json.loads(line)["method"] for line in guardians] == ["tools/list"]  # guardian learns the tools
    sent = (tmp_path / "sent").read_bytes().splitlines(keepends=True)
    to_client = [line for line in sent if b'"id":"io.guardian/' not in line]
    assert b"".join(got) + rest == b"".join(to_client)  # child -> client: untouched, nothing else
    assert len(sent) - len(to_client) == 1  # the one answer meant for guardian was kept back
    for line in (b"".join(got) + rest).splitlines():
        assert json.loads(line)["jsonrpc"] == "2.0"
    assert proc.returncode == 0
    assert b"mcp_child_started" in stderr[0] and b"raw child: noise on stderr" in stderr[0]


def test_requests_from_a_file_are_all_answered_before_exit(tmp_path):
    """stdin and stdout as regular files (no pipes): the fallback answers each request, then exits 0."""
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(REQUESTS[0] + REQUESTS[1] + b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n'
                         + b'not json\n' + b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":'
                         b'"checkpoint_save","arguments":{}}}\n')
    (tmp_path / "store").mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), GUARDIAN_STATE_DIR=str(tmp_path / "state"),
               GUARDIAN_CONFIG=str(tmp_path / "none.toml"), EMBEDDINGS_CACHE_DIR=str(tmp_path / "no-models"))
    with open(requests, "rb") as stdin, open(tmp_path / "answers.jsonl", "wb") as stdout:
        proc = subprocess.run([sys.executable, "-m", "guardian", "mcp", "--store", str(tmp_path / "store"), "--",
                               str(tmp_path / "no-such-contextd")], stdin=stdin, stdout=stdout,
                              stderr=subprocess.PIPE, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_bytes().splitlines()]
    by_id = {a["id"]: a for a in answers}
    assert by_id[1]["result"]["serverInfo"]["name"] == "guardian-fallback"
    assert [t["name"] for t in by_id[2]["result"]["tools"]][0] == "memory_search"
    assert by_id[None]["error"]["code"] == -32700
    assert by_id[3]["result"]["isError"] is True and "Nothing was stored" in by_id[3]["result"]["content"][0]["text"]


def test_usage_errors_are_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), GUARDIAN_STATE_DIR=str(tmp_path / "state"),
               GUARDIAN_CONFIG=str(tmp_path / "none.toml"))
    for args, words in ((["mcp"], "guardian mcp -- contextd --mcp"),
                        (["mcp", "--answer-timeout", "0", "--", "true"], "mcp_answer_timeout")):
        proc = subprocess.run([sys.executable, "-m", "guardian", *args], capture_output=True, env=env, timeout=120)
        assert proc.returncode == 2 and proc.stdout == b""
        assert proc.stderr.decode().count("\n") == 1 and words in proc.stderr.decode()


def _mcp_with(tmp_path, redirect: str) -> subprocess.CompletedProcess:
    """`guardian mcp -- RAW_CHILD` from a shell with stdin/stdout redirected as ``redirect`` says."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), GUARDIAN_STATE_DIR=str(tmp_path / "state"),
               GUARDIAN_CONFIG=str(tmp_path / "none.toml"), EMBEDDINGS_CACHE_DIR=str(tmp_path / "no-models"))
    (tmp_path / "store").mkdir(exist_ok=True)
    line = (f"exec {sys.executable} -m guardian mcp --store {tmp_path / 'store'} -- {sys.executable} {RAW_CHILD} "
            f"{tmp_path / 'received'} {tmp_path / 'sent'} {redirect}")
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=240)


def test_stdin_from_dev_null_ends_the_session_cleanly(tmp_path):
    """/dev/null cannot be polled (epoll refuses it): it is read like a file, EOF at once, exit 0."""
    for redirect in ("</dev/null", "</dev/null >/dev/null"):
        done = _mcp_with(tmp_path, redirect)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "PermissionError" not in done.stderr, done.stderr


def test_a_closed_stdin_or_stdout_is_one_line(tmp_path):
    for redirect, name in (("<&-", "stdin"), (">&-", "stdout")):
        done = _mcp_with(tmp_path, redirect)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: guardian mcp needs {name}"), done.stderr


def test_a_cancelled_request_does_not_make_a_silent_child_hung(tmp_path):
    """The client cancels a request the child never answers (MCP: it should not): guardian forgets
    it, so answer_timeout does not declare the child hung and kill it."""
    env = {"GUARDIAN_MCP_ANSWER_TIMEOUT": "1"}
    proc = start(tmp_path, env)
    stderr: list[bytes] = []
    threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True).start()
    try:
        for request in REQUESTS[:2]:
            proc.stdin.write(request)
        proc.stdin.write(b'{"jsonrpc":"2.0","id":7,"method":"test/never"}\n')
        proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}\n')
        proc.stdin.flush()
        wait_for(lambda: any(b'"mcp_request_cancelled"' in line for line in list(stderr)), 60,
                 what="guardian to forget the cancelled request")
        # past answer_timeout (1 s) and several of the hang checks (every 0.2 s), the child silent all along
        wait_for(lambda: (tmp_path / "received").read_bytes().count(b"notifications/cancelled"), 60,
                 what="the child to get the cancellation")
        time.sleep(3)
        proc.stdin.write(REQUESTS[3])
        proc.stdin.flush()
        answers = []
        while not any(json.loads(line).get("id") == 3 for line in answers):
            answers.append(proc.stdout.readline())
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    ping = next(json.loads(line) for line in answers if json.loads(line).get("id") == 3)
    assert ping["result"]["echo"] == "ping"  # the child's own answer: it was never replaced
    assert not any(b'"mcp_fallback"' in line for line in stderr)
    assert not any(b'"id": 7' in line or b'"id":7' in line for line in answers)
