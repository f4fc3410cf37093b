"""`guardian exec` as a real subprocess: repair first, then become the child with stdio untouched."""

from __future__ import annotations

import sys

import pytest

from guardian.store.scan import scan_store
from tests.conftest import run_cli


@pytest.fixture
def env(state_dir):
    return {"GUARDIAN_STATE_DIR": str(state_dir)}


def test_exec_repairs_then_passes_stdio_through_untouched(plain_store, env, tmp_path):
    meta = plain_store / "40917930" / "00000000.gob"
    meta.unlink()
    payload = bytes(range(256)) * 64 + b'{"jsonrpc":"2.0","id":1}\n'
    child = ("import os,sys\n"
             f"assert os.path.exists({str(meta)!r}), 'store not repaired before the child started'\n"
             "sys.stdout.buffer.write(sys.stdin.buffer.read())\n")
    proc = run_cli("exec", "--store", str(plain_store), "--", sys.executable, "-c", child, env=env, input=payload)
    assert proc.returncode == 0, proc.stderr_text
    assert proc.stdout == payload
    assert scan_store(plain_store).loadable


def test_exec_with_missing_command_is_a_one_line_error(plain_store, env):
    proc = run_cli("exec", "--store", str(plain_store), "--", "/nonexistent/contextd", env=env)
    assert proc.returncode == 127
    assert proc.stdout == b""
    assert "cannot run" in proc.stderr_text.strip().splitlines()[-1]
