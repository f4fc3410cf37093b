"""The command line itself: under --json an error is a JSON object on stdout for every command that
takes --json (scripts read stdout); `--at -5m` as written; empty paths refused."""

from __future__ import annotations

import json

import pytest

from guardian.cli import build_parser, join_dash_values
from guardian.errors import ExitCode

pytestmark = pytest.mark.timeout(600)   # a CLI process per case: a deadline for a hang, not a speed goal


def json_commands() -> set[str]:
    """Every command (or `quarantine`) whose parser takes --json."""
    parser = build_parser()
    return {name for name, sub in parser.command_parsers.items()
            if any("--json" in action.option_strings for action in sub._actions)}


def error_cases(store, tmp_path) -> dict[str, tuple[list[str], int]]:
    """One failing call per --json command (and the code it must exit with)."""
    afile = tmp_path / "a-file"
    afile.write_text("not a store")
    nowhere = f"file://{tmp_path / 'no-disk' / 'guardian'}"
    return {
        "check": (["check", "--store", str(afile)], ExitCode.USAGE),
        "snapshot": (["snapshot", "--store", str(afile)], ExitCode.USAGE),
        "snapshots": (["snapshots", "--from", nowhere], ExitCode.REPLICA),
        "restore": (["restore", "--at", "latest", "--store", str(store)], ExitCode.USAGE),   # no snapshot yet
        "verify": (["verify", "--from", nowhere], ExitCode.REPLICA),
        "quarantine": (["quarantine", "restore", "no-such-entry", "--store", str(store)], ExitCode.USAGE),
        "status": (["status", "--config", str(tmp_path / "missing.toml")], ExitCode.USAGE),
        "restart": (["restart", "--store", str(store)], ExitCode.SUPERVISOR),
        "query": (["query", "--direct", "--collection", "nope", "--like", "x", "--store", str(store)],
                  ExitCode.USAGE),
        "replicate": (["replicate", "--store", str(store)], ExitCode.USAGE),   # no replica configured
    }


def test_every_json_command_has_an_error_case(plain_store, tmp_path):
    assert set(error_cases(plain_store, tmp_path)) == json_commands()


@pytest.mark.parametrize("command", sorted(json_commands()))
def test_an_error_under_json_is_a_json_object_on_stdout(cli, plain_store, tmp_path, command):
    argv, code = error_cases(plain_store, tmp_path)[command]
    env = {"GUARDIAN_REPLICAS": "", "XDG_CONFIG_HOME": str(tmp_path / "config-home")}
    proc = cli(*argv, "--json", env=env)
    assert proc.returncode == code, (proc.stdout_text, proc.stderr_text)
    answer = json.loads(proc.stdout_text)                      # the whole of stdout: one object
    assert set(answer) == {"error", "hint", "exit_code"} and answer["exit_code"] == code
    assert answer["error"] and answer["error"] in proc.stderr_text   # the same words as the stderr line
    assert "Traceback" not in proc.stderr_text and "internal error" not in proc.stderr_text


def test_without_json_stdout_stays_empty(cli, plain_store, tmp_path):
    argv, code = error_cases(plain_store, tmp_path)["restore"]
    proc = cli(*argv)
    assert proc.returncode == code and proc.stdout_text == "" and proc.stderr_text.startswith("error: ")


def test_a_refused_command_line_is_json_too(cli, plain_store):
    proc = cli("check", "--json", "--bogus", "--store", str(plain_store))
    assert proc.returncode == ExitCode.USAGE
    assert json.loads(proc.stdout_text) == {"error": "unrecognized arguments: --bogus",
                                            "hint": "see `guardian check --help`", "exit_code": 2}
    assert "usage: guardian check" in proc.stderr_text      # argparse's own usage, as before
    child = cli("exec", "--store", str(plain_store), "--", "/nonexistent/tool", "--json")
    assert child.stdout_text == ""                          # a child's --json is the child's


def test_an_age_with_a_minus_is_read_as_written(cli, plain_store):
    cli("snapshot", "--store", str(plain_store), check=True)
    for argv in (["--at", "-0s"], ["--at=-0s"]):
        proc = cli("restore", *argv, "--dry-run", "--store", str(plain_store))
        assert proc.returncode == 0, proc.stderr_text
        assert "would restore the store to snapshot" in proc.stdout_text
    missing = cli("restore", "--at", "--dry-run", "--store", str(plain_store))
    assert missing.returncode == 2 and "--at: expected one argument" in missing.stderr_text


def test_join_dash_values_touches_only_at_and_nothing_after_the_separator():
    assert join_dash_values(["restore", "--at", "-5m", "--force"]) == ["restore", "--at=-5m", "--force"]
    assert join_dash_values(["restore", "--at", "--force"]) == ["restore", "--at", "--force"]
    assert join_dash_values(["run", "--", "cmd", "--at", "-5"]) == ["run", "--", "cmd", "--at", "-5"]
    assert join_dash_values(["restore", "--at"]) == ["restore", "--at"]


@pytest.mark.parametrize("option", ["--store", "--state-dir", "--config"])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(cli, tmp_path, option):
    proc = cli("check", option, "", "--json")
    assert proc.returncode == ExitCode.USAGE
    assert "an empty path is not allowed" in json.loads(proc.stdout_text)["error"]


def test_an_empty_store_from_the_environment_is_refused(cli):
    proc = cli("snapshot", env={"GUARDIAN_STORE": ""})
    assert proc.returncode == ExitCode.USAGE and "the store path is empty" in proc.stderr_text
