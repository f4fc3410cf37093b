"""`guardian query` and `guardian serve`: fixture answers from the store and from a running server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

import numpy as np

from guardian import cli as guardian_cli
from guardian.format.chromem import Document, collection_dir_name, document_stem, encode_document
from tests.waiting import http_status, wait_for


def query_args(store, name, case_query, k):
    args = ["query", "--store", str(store), "--collection", name, "--vector", json.dumps(case_query["vector"]),
            "-k", str(k), "--json", "--direct"]
    for key, value in (case_query.get("where") or {}).items():
        args += ["--where", f"{key}={value}"]
    document = case_query.get("where_document") or {}
    if "$contains" in document:
        args += ["--contains", document["$contains"]]
    if "$not_contains" in document:
        args += ["--not-contains", document["$not_contains"]]
    return args


def test_every_fixture_case_through_the_cli(any_store, state_dir, queries, capsys):
    for name, cases in queries.items():
        for case in cases:
            assert guardian_cli.main(query_args(any_store, name, case["query"], 5)) == 0
            answer = json.loads(capsys.readouterr().out)
            assert [r["id"] for r in answer["results"]] == [r["id"] for r in case["top5"]]
            assert np.allclose([r["similarity"] for r in answer["results"]],
                               [r["similarity"] for r in case["top5"]], atol=1e-5, rtol=0)
    assert list((state_dir / "stores").glob("*/cache/index/*.rows"))  # the cache was written


def test_cli_errors_are_one_line(plain_store, cli):
    vector = json.dumps([0.1] * 384)
    for args, words in [
        (["--collection", "nope", "--vector", vector], "unknown collection"),
        (["--collection", "checkpoints", "--vector", "[1, 2]"], "dimensions"),
        (["--collection", "checkpoints", "--vector", "not json"], "not a JSON list"),
        (["--collection", "checkpoints", "--vector", vector, "-k", "50"], "larger than"),
        (["--collection", "checkpoints", "--vector", vector, "--where", "novalue"], "KEY=VALUE"),
    ]:
        proc = cli("query", "--store", str(plain_store), "--direct", *args)
        assert proc.returncode == 2, proc.stderr_text
        assert words in proc.stderr_text and proc.stderr_text.count("\n") == 1
        assert "Traceback" not in proc.stderr_text


def test_human_output_and_like(plain_store, cli, contents):
    doc = next(c for c in contents["collections"] if c["name"] == "checkpoints")["documents"][0]
    proc = cli("query", "--store", str(plain_store), "--collection", "checkpoints", "--like", doc["id"], "-k", "2")
    assert proc.returncode == 0, proc.stderr_text
    lines = proc.stdout_text.splitlines()
    assert lines[0].split() == ["RANK", "ID", "SIMILARITY", "CONTENT"]
    assert lines[1].split()[:3] == ["1", doc["id"], "1.000000"]
    assert len(lines) == 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc) -> None:
    def ready() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode()
        return http_status(f"{url}/readyz") == 200
    wait_for(ready, timeout=60, what="guardian serve to be ready")


def post(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_serve_answers_query_cmd_and_follows_the_store_live(plain_store, state_dir, cli, queries):
    port = free_port()
    env = {"GUARDIAN_STATE_DIR": str(state_dir), "GUARDIAN_HTTP_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "guardian", "serve", "--store", str(plain_store)],
                            env={**__import__("os").environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        case = queries["webapp_memories"][1]
        answer = cli(*query_args(plain_store, "webapp_memories", case["query"], 5)[:-1], "--store", str(plain_store),
                     env=env)
        assert answer.returncode == 0, answer.stderr_text
        assert "from the sidecar" in answer.stderr_text
        assert [r["id"] for r in json.loads(answer.stdout_text)["results"]] == [r["id"] for r in case["top5"]]

        folder = plain_store / collection_dir_name("checkpoints")
        vector = np.zeros(384, dtype=np.float32)
        vector[11] = 1.0
        (folder / (document_stem("live-doc") + ".gob")).write_bytes(
            encode_document(Document("live-doc", {}, vector, "live"), False))
        victim = sorted(p for p in folder.iterdir() if p.name != "00000000.gob")[0]
        victim.write_bytes(victim.read_bytes()[:40])
        def top_is_the_new_doc() -> bool:
            top = post(f"{url}/v1/collections/checkpoints/query", {"vector": vector.tolist(), "k": 1})["results"]
            return bool(top) and top[0]["id"] == "live-doc"
        wait_for(top_is_the_new_doc, what="the served index to pick up the new document")
        assert proc.poll() is None  # the damaged file did not take the server down
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_one_result_is_counted_in_the_singular(plain_store, cli, contents):
    doc = next(c for c in contents["collections"] if c["name"] == "checkpoints")["documents"][0]
    proc = cli("query", "--store", str(plain_store), "--collection", "checkpoints", "--like", doc["id"], "-k", "1")
    assert proc.returncode == 0 and proc.stderr_text.strip() == "(1 result from the store)"
