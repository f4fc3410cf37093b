"""Shared test fixtures: real fixture stores copied to tmp, an isolated state dir, a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "chromem-go-v0.7.0"
STORE_PLAIN = FIXTURES / "store-plain"
STORE_GZ = FIXTURES / "store-gz"
DAMAGED = FIXTURES / "damaged"
# The real chromem-go v0.7.0 as a command (../shared beside the clone in CI); tests skip without it.
SHARED = Path(os.environ.get("GUARDIAN_TEST_SHARED", ROOT.parent / "shared"))
CHROMEMH = SHARED / "chromem-harness" / "chromemh"


def copy_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    for folder, dirs, files in os.walk(dst):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)
    return dst


@pytest.fixture(scope="session")
def contents() -> dict:
    return json.loads((FIXTURES / "contents.json").read_text())


@pytest.fixture(scope="session")
def queries() -> dict:
    return json.loads((FIXTURES / "queries.json").read_text())


@pytest.fixture(scope="session")
def verdicts() -> dict:
    return json.loads((DAMAGED / "verdicts.json").read_text())


@pytest.fixture(scope="session")
def chromemh() -> Path:
    """Path of the real chromem loader/writer (``chromemh``); skips the test cleanly where absent."""
    if not (CHROMEMH.is_file() and os.access(CHROMEMH, os.X_OK)):
        pytest.skip(f"the real chromem harness is not at {CHROMEMH}")
    return CHROMEMH


def chromem_load(chromemh_path: Path, store: Path, compress: bool = False) -> dict:
    """The real NewPersistentDB's verdict on ``store``: {"ok", "error", "collections"}."""
    proc = subprocess.run([str(chromemh_path), "load", str(store), "1" if compress else "0"],
                          capture_output=True, timeout=300, check=True)
    return json.loads(proc.stdout)


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(name, size, read_only=False) -> Path``: a fresh tmpfs of ``size`` ("256k", "1m") mounted
    at ``tmp_path / name`` for the test - a disk that fills up for real, or (read-only) a folder even
    root cannot write. Skips the test where mounting is not allowed; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size: str, read_only: bool = False) -> Path:
        path = tmp_path / name
        path.mkdir()
        options = f"ro,size={size}" if read_only else f"size={size}"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a {'read-only' if read_only else 'small'} tmpfs here")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    """An isolated guardian state dir (outside every store), set in the environment."""
    path = tmp_path / "state"
    path.mkdir()
    monkeypatch.setenv("GUARDIAN_STATE_DIR", str(path))
    monkeypatch.setenv("GUARDIAN_CONFIG", str(tmp_path / "no-config.toml"))
    return path


@pytest.fixture
def plain_store(tmp_path) -> Path:
    return copy_store(STORE_PLAIN, tmp_path / "store")


@pytest.fixture
def gz_store(tmp_path) -> Path:
    return copy_store(STORE_GZ, tmp_path / "store")


@pytest.fixture(params=["plain", "gz"])
def any_store(request, tmp_path) -> Path:
    src = STORE_PLAIN if request.param == "plain" else STORE_GZ
    return copy_store(src, tmp_path / "store")


def run_cli(*args: str, env: dict | None = None, input: bytes | None = None, timeout: float = 60,
            check: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m guardian ARGS` in a real subprocess; returns the CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "guardian", *args],
        env=full_env, input=input, capture_output=True, timeout=timeout,
    )
    proc.stdout_text = proc.stdout.decode("utf-8", "replace")
    proc.stderr_text = proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"guardian {' '.join(args)} exited {proc.returncode}: {proc.stderr_text}")
    return proc


@pytest.fixture
def cli(state_dir):
    """Run the real CLI in a subprocess with the isolated state dir."""
    def _run(*args, **kwargs):
        env = kwargs.pop("env", {}) or {}
        env.setdefault("GUARDIAN_STATE_DIR", str(state_dir))
        return run_cli(*args, env=env, **kwargs)
    return _run


@pytest.fixture
def parts(plain_store, tmp_path, monkeypatch):
    """One runtime part at a time (tests/runtime/parts): ``parts.make(**config)`` is a real context on a
    copy of the plain store; ``parts.alerts()`` what the real alerter sent; the locks are this test's."""
    from tests.runtime.parts.part_helpers import PartSetup

    (tmp_path / "locks").mkdir(mode=0o700)
    monkeypatch.setenv("GUARDIAN_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("GUARDIAN_CONFIG", str(tmp_path / "no-config.toml"))
    return PartSetup(plain_store, tmp_path)
