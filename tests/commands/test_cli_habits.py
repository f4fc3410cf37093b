"""CLI habits a newcomer brings: options before the command, a command's own usage on a bad option,
a suggestion for a mistyped command; and inputs that used to be internal errors."""

from __future__ import annotations

import pytest

# many real CLI processes per test: a deadline for a hang, not a speed goal (CI is a loaded 2-core box)
pytestmark = pytest.mark.timeout(900)


def test_global_options_before_the_command(cli, plain_store):
    proc = cli("--store", str(plain_store), "check")
    assert proc.returncode == 0, proc.stderr_text
    assert "no problems found" in proc.stdout_text
    equals = cli(f"--store={plain_store}", "--log-level", "error", "snapshots")
    assert equals.returncode == 0 and "no snapshots yet" in equals.stdout_text


def test_option_after_the_command_wins_over_one_before(cli, plain_store, tmp_path):
    proc = cli("--store", str(tmp_path / "nowhere"), "check", "--store", str(plain_store))
    assert proc.returncode == 0 and str(plain_store) in proc.stdout_text


def test_unknown_option_prints_the_commands_usage(cli, plain_store):
    proc = cli("check", "--bogus", "--store", str(plain_store))
    assert proc.returncode == 2
    assert "usage: guardian check" in proc.stderr_text
    assert "unrecognized arguments: --bogus" in proc.stderr_text


def test_mistyped_command_gets_a_suggestion(cli):
    proc = cli("chekc")
    assert proc.returncode == 2 and "did you mean 'check'?" in proc.stderr_text
    prefix = cli("snap")
    assert "'snapshot' or 'snapshots'" in prefix.stderr_text
    nothing = cli("zzzzzz")
    assert nothing.returncode == 2 and "unknown command 'zzzzzz'" in nothing.stderr_text
    assert "Traceback" not in nothing.stderr_text


def test_an_age_beyond_the_calendar_is_a_usage_error(cli, plain_store):
    assert cli("snapshot", "--store", str(plain_store)).returncode == 0
    for age in ("99999999w", "9" * 400 + "d"):
        proc = cli("restore", "--at", age, "--dry-run", "--store", str(plain_store))
        assert proc.returncode == 2, proc.stderr_text
        assert "internal error" not in proc.stderr_text and "before the year 1" in proc.stderr_text
        assert len(proc.stderr_text.strip().splitlines()) == 1
