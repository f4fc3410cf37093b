"""The memory routes over real sockets: each answer equals the CLI's --json for the same question;
bad requests get 400, what is not there 404, in the API's {error, hint} shape."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from guardian.config import Config
from guardian.index.store_index import StoreIndex
from guardian.memories.browser import MemoryBrowser
from guardian.server.http import GuardianHTTPServer
from tests.conftest import run_cli
from tests.memories.conftest import ChromemStore, three_snapshots
from tests.server.test_http_api import request


@pytest.fixture
def served(chromemh, tmp_path):
    s = ChromemStore(chromemh, tmp_path)
    ids = three_snapshots(s)
    server = GuardianHTTPServer(StoreIndex(s.store).build(), None, Config(http_port=0),
                                memories=MemoryBrowser.for_paths(s.paths)).start()

    def cli(*args):
        env = {"GUARDIAN_STORE": str(s.store), "GUARDIAN_STATE_DIR": str(tmp_path / "state"),
               "GUARDIAN_CONFIG": str(tmp_path / "no-config.toml")}
        done = run_cli(*args, "--json", env=env)
        assert done.returncode == 0, done.stderr_text
        return json.loads(done.stdout_text)
    yield server, ids, cli
    server.stop()


def get(server, path):
    status, body = request(server, "GET", path)
    assert status == 200, body
    return body


def without(data: dict, *keys: str) -> dict:
    return {k: v for k, v in data.items() if k not in keys}


def test_http_answers_equal_the_cli_json(served):
    server, ids, cli = served
    assert get(server, f"/v1/diff?from={ids[0]}&to={ids[2]}") == cli("diff", ids[0], ids[2])
    assert without(get(server, f"/v1/diff?from={ids[0]}&collection=notes"), "to_time") == \
        without(cli("diff", ids[0], "--collection", "notes"), "to_time")   # to the store now: the time differs
    assert get(server, "/v1/memories/n1/history") == cli("history", "n1")
    assert get(server, "/v1/memories/shared/history?collection=lessons") == cli("history", "shared", "--collection",
                                                                                 "lessons")
    assert get(server, f"/v1/memories/n1?at={ids[0]}") == cli("show", "n1", "--at", ids[0])
    assert without(get(server, "/v1/memories/n1"), "time") == without(cli("show", "n1"), "time")
    assert get(server, "/v1/find?text=JWT") == cli("find", "JWT")
    assert get(server, "/v1/find?where=outcome%3Dfailure&where=state%3Dactive") == \
        cli("find", "--where", "outcome=failure", "--where", "state=active")
    assert get(server, "/v1/find?id=shared&collection=notes") == cli("find", "--id", "shared", "--collection", "notes")


@pytest.mark.parametrize("path,status,words", [
    ("/v1/diff", 400, "from is missing"),
    ("/v1/diff?from=yesterday", 400, "cannot read the time"),
    ("/v1/diff?from=20000101T000000.000000Z-abcd", 404, "there is no snapshot"),
    ("/v1/memories/nope", 404, "is not in the store now"),
    ("/v1/memories/shared", 400, "in 2 collections"),
    ("/v1/memories/nope/history", 404, "in none of the 3 snapshots"),
    ("/v1/find", 400, "nothing to find"),
    ("/v1/memories/a/b/c", 404, "no route"),
])
def test_bad_requests_and_missing_memories(served, path, status, words):
    server, _, _ = served
    got, body = request(server, "GET", path)
    assert got == status and words in body["error"] and body["hint"]


def test_ids_are_url_decoded_and_only_get_is_answered(served):
    server, _, _ = served
    got, body = request(server, "GET", f"/v1/memories/{quote('odd/id?', safe='')}")
    assert got == 404 and "'odd/id?'" in body["error"]
    assert request(server, "POST", "/v1/find?text=x")[0] == 405
