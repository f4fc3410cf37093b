"""The HTTP API over real sockets on 127.0.0.1: fixture answers, errors, auth, health, metrics."""

from __future__ import annotations

import http.client
import json
import threading
import time

import numpy as np
import pytest

from guardian.config import Config
from guardian.format.chromem import Document, collection_dir_name, document_stem, encode_document
from guardian.index.store_index import StoreIndex
from guardian.server.http import GuardianHTTPServer
from guardian.server.metrics import Metrics


def request(server, method, path, body=None, token=None, raw=None):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(data)
    return response.status, data.decode()


@pytest.fixture
def served(any_store):
    index = StoreIndex(any_store).build()
    server = GuardianHTTPServer(index, lambda: {"sidecar": {"running": True}}, Config(http_port=0),
                                Metrics()).start()
    yield server, index, any_store
    server.stop()


def test_fixture_queries_over_http(served, queries):
    server, _, _ = served
    for name, cases in queries.items():
        for case in cases:
            status, body = request(server, "POST", f"/v1/collections/{name}/query", dict(case["query"], k=5))
            assert status == 200, body
            assert [r["id"] for r in body["results"]] == [r["id"] for r in case["top5"]]
            assert np.allclose([r["similarity"] for r in body["results"]],
                               [r["similarity"] for r in case["top5"]], atol=1e-5, rtol=0)
            assert all(set(r) == {"id", "similarity", "content", "metadata"} for r in body["results"])


def test_batch_over_http(served, queries):
    server, _, _ = served
    cases = [c for c in queries["checkpoints"] if set(c["query"]) == {"vector"}][:3]
    status, body = request(server, "POST", "/v1/collections/checkpoints/query",
                           {"vectors": [c["query"]["vector"] for c in cases], "k": 1})
    assert status == 200
    assert [r[0]["id"] for r in body["results"]] == [c["top1"][0]["id"] for c in cases]


@pytest.mark.parametrize("path, body, status, words", [
    ("/v1/collections/nope/query", {"vector": [0.1] * 384}, 404, "unknown collection"),
    ("/v1/collections/checkpoints/query", {"vector": [0.1] * 3}, 400, "dimensions"),
    ("/v1/collections/checkpoints/query", {"vector": []}, 400, "empty"),
    ("/v1/collections/checkpoints/query", {"vector": [0.1] * 384, "k": 100}, 400, "larger than"),
    ("/v1/collections/checkpoints/query", {"vector": [0.1] * 384, "k": 0}, 400, ">= 1"),
    ("/v1/collections/checkpoints/query", {"vectors": [[0.1] * 384, [0.2] * 383]}, 400, "same length"),
    ("/v1/collections/checkpoints/query", {"like": "nobody"}, 404, "no document"),
    ("/v1/collections/checkpoints/query", {"vector": [0.1] * 384, "where_document": {"$re": "x"}}, 400, "operator"),
])
def test_bad_requests_get_4xx_json(served, path, body, status, words):
    server, _, _ = served
    got, answer = request(server, "POST", path, body)
    assert got == status
    assert words in answer["error"] and "hint" in answer


def test_nan_and_garbage_bodies_are_400(served):
    server, _, _ = served
    path = "/v1/collections/checkpoints/query"
    status, answer = request(server, "POST", path, raw=b'{"vector": [NaN' + b", 0.1" * 383 + b"]}")
    assert status == 400 and "NaN" in answer["error"]
    assert request(server, "POST", path, raw=b"{not json")[0] == 400
    assert request(server, "POST", path, raw=b"[1, 2]")[0] == 400
    assert request(server, "GET", path)[0] == 405
    assert request(server, "GET", "/v2/else")[0] == 404


def test_health_ready_status_collections_metrics(served):
    server, _, _ = served
    assert request(server, "GET", "/healthz") == (200, {"healthy": True})
    assert request(server, "GET", "/readyz")[1]["ready"] is True
    status, data = request(server, "GET", "/v1/status")
    assert status == 200 and data["sidecar"] == {"running": True} and data["index"]["ready"]
    status, data = request(server, "GET", "/v1/collections")
    assert {c["name"]: c["documents"] for c in data["collections"]}["webapp_memories"] == 40
    request(server, "POST", "/v1/collections/checkpoints/query", {"vector": [0.1] * 384, "k": 1})
    status, text = request(server, "GET", "/metrics")
    assert status == 200
    assert "guardian_query_seconds_count 1.0" in text
    assert "guardian_index_documents 90.0" in text


def test_damaged_file_never_takes_the_server_down_and_shows_within_2s(served):
    server, index, store = served
    folder = store / collection_dir_name("checkpoints")
    vector = np.zeros(384, dtype=np.float32)
    vector[5] = 1.0
    new = folder / (document_stem("live") + (".gob.gz" if index.compress else ".gob"))
    new.write_bytes(encode_document(Document("live", {}, vector, "live doc"), index.compress))
    victim = sorted(p for p in folder.iterdir() if not p.name.startswith("00000000"))[0]
    victim.write_bytes(b"\x00garbage")
    started = time.monotonic()
    index.refresh_paths([new, victim])
    status, body = request(server, "POST", "/v1/collections/checkpoints/query", {"vector": vector.tolist(), "k": 1})
    assert status == 200 and body["results"][0]["id"] == "live"
    assert time.monotonic() - started < 2
    assert request(server, "GET", "/readyz")[0] == 503
    new.unlink()
    index.refresh_paths([new])
    status, body = request(server, "POST", "/v1/collections/checkpoints/query", {"vector": vector.tolist(), "k": 1})
    assert status == 200 and body["results"][0]["id"] != "live"


def test_bearer_token_and_fatal_child_health(plain_store):
    index = StoreIndex(plain_store).build()
    server = GuardianHTTPServer(index, None, Config(http_port=0, http_token="s3cret"),
                                health_provider=lambda: {"healthy": False, "child": "FATAL"}).start()
    try:
        assert request(server, "GET", "/v1/collections")[0] == 401
        assert request(server, "GET", "/v1/collections", token="wrong")[0] == 401
        assert request(server, "GET", "/v1/collections", token="s3cret")[0] == 200
        assert request(server, "GET", "/metrics")[0] == 401
        assert request(server, "GET", "/healthz") == (503, {"healthy": False, "child": "FATAL"})
    finally:
        server.stop()


def test_body_size_limit(served):
    server, _, _ = served
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.putrequest("POST", "/v1/collections/checkpoints/query")
    conn.putheader("Content-Length", str(64 * 1024 * 1024))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    conn.close()


def test_eight_threads_during_reindex(served):
    server, index, store = served
    vector = np.zeros(384, dtype=np.float32)
    vector[9] = 1.0
    path = store / collection_dir_name("webapp_memories") / (
        document_stem("flip") + (".gob.gz" if index.compress else ".gob"))
    failures, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            status, body = request(server, "POST", "/v1/collections/webapp_memories/query",
                                   {"vector": vector.tolist(), "k": 5})
            sims = [r["similarity"] for r in body.get("results", [])]
            if status != 200 or len(sims) != 5 or sims != sorted(sims, reverse=True):
                failures.append((status, body))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for i in range(10):
        if i % 2 == 0:
            path.write_bytes(encode_document(Document("flip", {}, vector, "x"), index.compress))
        else:
            path.unlink()
        index.refresh_paths([path])
        time.sleep(0.02)
    stop.set()
    for thread in threads:
        thread.join()
    assert not failures


# --------------------------------------------------------------------------- orjson in, orjson out


def json_module_value(body: bytes):
    """What parse_json answered before orjson: json.loads's value, or its error's message."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return f"the request body is not valid JSON: {exc}"


def parsed(body: bytes):
    from guardian.errors import QueryError
    from guardian.server.api import parse_json
    try:
        return parse_json(body)
    except QueryError as exc:
        return exc.message


@pytest.mark.parametrize("body", [
    b'{"vector": [0.1, -2.5e-7, 1E5, 3, -0, -0.0, 1.7976931348623157e308, 5e-324], "k": 5}',
    b'{"where": {"a": "\\u00e9\xc3\xa9 \\n \\"q\\""}, "a": 1, "a": 2}', b"[1, 2]", b'"text"', b"  null \n",
    b'{"vector": [NaN, 1.0]}', b'{"vector": [Infinity, -Infinity]}', b'{"vector": [1e400]}',   # json reads these
    b'{"where_document": {"$contains": "\\ud800"}}', b'{"k": 1' + b"0" * 400 + b"}",
    b"{not json", b"[1, 2,]", b"\xef\xbb\xbf{}", b'{"a": "\x01"}', b'"\xed\xa0\x80"', b"[1] x",  # nor these
    b"[" * 2000,
])
def test_bodies_read_as_json_loads_reads_them(body):
    """orjson where it reads a body; every body it refuses (NaN, lone surrogates, numbers past
    float64, deep nesting, bad JSON) reads as json.loads read it, or fails with json's own message."""
    expected = json_module_value(body) if not body.startswith(b"[" * 2000) else "the request body nests too deeply"
    got = parsed(body)
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)  # NaN == NaN here
    assert type(got) is type(expected)


def test_query_answers_are_the_values_json_dumps_writes():
    """orjson writes a query's answer (UTF-8 text); a lone surrogate or a non-finite similarity goes
    through json.dumps as before. Either way the client reads what json.dumps would have said."""
    from guardian.server.api import query_response
    plain = {"collection": "c", "results": [{"id": "é", "similarity": 0.1 + 0.2, "content": "ü €", "metadata": {}}]}
    response = query_response(plain, finite=True)
    assert response.body == (json.dumps(plain, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    assert json.loads(response.body) == plain
    surrogate = {"collection": "c", "results": [{"id": "bad \udcff byte", "similarity": 1.0}]}
    assert query_response(surrogate, finite=True).body == (json.dumps(surrogate) + "\n").encode()
    nan = {"collection": "c", "results": [{"id": "x", "similarity": float("nan")}]}
    assert query_response(nan, finite=False).body == (json.dumps(nan) + "\n").encode()  # NaN, not null


def test_non_utf8_and_non_ascii_documents_answer_over_http_as_in_process(plain_store):
    """A Go string that is not UTF-8 (kept by surrogateescape) and a non-ASCII one: the HTTP answer
    decodes to the in-process answer."""
    from guardian.index import query as q
    folder = plain_store / collection_dir_name("checkpoints")
    dimension = 384
    vector = np.zeros(dimension, dtype=np.float32)
    vector[0] = 1.0
    for doc_id, content in (("bytes-doc", "raw \udcff\udcfe bytes"), ("utf8-doc", "naïve café ✓")):
        doc = Document(doc_id, {"note": content}, vector, content)
        (folder / (document_stem(doc_id) + ".gob")).write_bytes(encode_document(doc))
    index = StoreIndex(plain_store).build()
    body = {"vector": vector.tolist(), "k": 2}
    expected = index.search("checkpoints", q.parse_request(body)).results[0]
    assert {r["id"] for r in expected} == {"bytes-doc", "utf8-doc"}
    with GuardianHTTPServer(index, None, Config(http_port=0)) as server:
        status, answer = request(server, "POST", "/v1/collections/checkpoints/query", body)
    assert status == 200
    assert answer["results"] == expected
