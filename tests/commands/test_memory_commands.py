"""`guardian diff`, `history`, `show` and `find` as a user runs them: 80 columns, --json, one-line
errors with the usage exit code, and `history --from` a folder replica."""

from __future__ import annotations

import json

import pytest

from guardian.errors import ExitCode
from tests.conftest import run_cli
from tests.memories.conftest import ChromemStore, three_snapshots


@pytest.fixture
def history(chromemh, tmp_path):
    s = ChromemStore(chromemh, tmp_path)
    ids = three_snapshots(s)

    def guardian(*args):
        done = run_cli(*args, env={"GUARDIAN_STORE": str(s.store), "GUARDIAN_STATE_DIR": str(tmp_path / "state"),
                                   "GUARDIAN_CONFIG": str(tmp_path / "no-config.toml")})
        assert "Traceback" not in done.stderr_text and "internal error" not in done.stderr_text, done.stderr_text
        return done
    return s, ids, guardian


def lines_of(done) -> list[str]:
    assert done.returncode == ExitCode.OK, done.stderr_text
    lines = done.stdout_text.splitlines()
    assert max(map(len, lines)) <= 80, "\n".join(line for line in lines if len(line) > 80)
    return lines


def test_diff_prints_a_short_table_per_collection(history):
    s, ids, guardian = history
    text = "\n".join(lines_of(guardian("diff", ids[0], ids[2])))
    assert "notes: 1 added, 1 removed, 1 changed" in text
    assert "  ~ n1  JWT key rotation" in text and "content, metadata (outcome, updated_at)" in text
    assert "  - n2  a note without a title" in text and "  + n3  A very long title" in text
    assert "lessons" not in text
    data = json.loads(guardian("diff", ids[0], ids[2], "--json").stdout_text)
    assert (data["from"], data["to"]) == (ids[0], ids[2])
    assert {(c["id"], c["change"]) for c in data["changes"]} == {("n1", "changed"), ("n2", "removed"),
                                                                 ("n3", "added")}
    now = json.loads(guardian("diff", ids[0], "--json", "--collection", "notes").stdout_text)
    assert now["to"] == "store" and len(now["changes"]) == 3
    assert "no memory changed" in guardian("diff", "latest").stdout_text


def test_history_and_show(history):
    s, ids, guardian = history
    text = "\n".join(lines_of(guardian("history", "n1")))
    assert "3 versions in 3 snapshots, collection notes" in text and text.count("JWT key rotation") == 3
    entries = json.loads(guardian("history", "n1", "--json").stdout_text)
    assert [(e["snapshot"], e["change"]) for e in entries] == [(ids[0], "added"), (ids[1], "changed"),
                                                              (ids[2], "changed")]
    both = json.loads(guardian("history", "shared", "--json").stdout_text)
    assert sorted(e["collection"] for e in both) == ["lessons", "notes"]

    shown = "\n".join(lines_of(guardian("show", "n1", "--at", ids[0])))
    assert "every 90 days" in shown and f"from        {ids[0]}" in shown and "384" not in shown
    assert "embedding   8 dimensions, norm 1.0000" in shown and "success · active · tags auth security" in shown
    data = json.loads(guardian("show", "n1", "--json").stdout_text)
    assert data["snapshot"] == "store" and data["metadata"]["outcome"] == "failure"
    assert len(data["embedding"]["values"]) == 8


def test_find(history):
    s, ids, guardian = history
    text = "\n".join(lines_of(guardian("find", "jwt")))
    assert text.startswith("1 memory found in 3 snapshots") and "n1  JWT key rotation" in text
    assert "3 snapshots, 3 versions" in text
    gone = json.loads(guardian("find", "without a title", "--json").stdout_text)["matches"]
    assert [(m["id"], m["first_seen"], m["last_seen"], m["in_latest"]) for m in gone] == [("n2", ids[0], ids[0], False)]
    assert "gone since" in guardian("find", "without a title").stdout_text
    where = json.loads(guardian("find", "--where", "outcome=failure", "--json").stdout_text)["matches"]
    assert [(m["id"], m["first_seen"]) for m in where] == [("n1", ids[2])]
    assert [m["collection"] for m in json.loads(guardian("find", "--id", "shared", "--json").stdout_text)
            ["matches"]] == ["lessons", "notes"]


@pytest.mark.parametrize("args,words", [
    (("show", "n1", "--at", "yesterday"), "cannot read the time"),
    (("show", "nope"), "is not in the store now"),
    (("show", "shared"), "pass --collection"),
    (("history", "nope"), "in none of the 3 snapshots"),
    (("diff", "20000101T000000.000000Z-abcd"), "there is no snapshot"),
    (("find",), "nothing to find"),
    (("find", "--where", "outcome"), "is not KEY=VALUE"),
])
def test_bad_requests_are_one_line_usage_errors(history, args, words):
    _, _, guardian = history
    done = guardian(*args)
    assert done.returncode == ExitCode.USAGE and done.stdout_text == ""
    assert len(done.stderr_text.strip().splitlines()) == 1 and words in done.stderr_text and "hint:" in done.stderr_text


def test_history_from_a_folder_replica(history, tmp_path):
    s, ids, guardian = history
    replica = f"file://{tmp_path / 'backup'}?encrypt=0"
    assert guardian("replicate", "--to", replica).returncode == ExitCode.OK
    local = json.loads(guardian("history", "n1", "--json").stdout_text)
    remote = guardian("history", "n1", "--json", "--from", replica)
    assert remote.returncode == ExitCode.OK, remote.stderr_text
    assert json.loads(remote.stdout_text) == local
    assert not list((tmp_path / "state").glob("**/guardian-history-*"))
