"""Real processes for the tests of who holds or uses a store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def ready_process():
    """Start a process that prints "ready" once it holds what it is to hold and then waits for its
    stdin to close; every one started is ended (stdin closed, waited for) after the test."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=cwd)
        assert proc.stdout.readline().strip() == "ready"
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stdin.close()
        proc.wait(timeout=30)
