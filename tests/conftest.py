"""Shared test fixtures: real fixture stores copied to tmp, an isolated state dir, a CLI runner.

The suite runs in parallel (pytest-xdist, ``-n 4`` from pyproject.toml; ``-n 0`` runs it in one
process). A test is parallel-safe here when:

- everything it writes is under its own ``tmp_path`` (or ``tmp_path_factory``), never a fixed path
  in /tmp, the repository or $HOME; environment variables are set with ``monkeypatch`` or passed to
  the subprocess it starts (``run_cli(env=...)``), never written to ``os.environ``;
- every server binds port 0 (or asks the OS for a free port) on 127.0.0.1, never a fixed port;
- it waits with ``tests/waiting.py`` and generous deadlines: other workers load the box;
- a session fixture is per worker: cheap enough to exist once in each (the SeaweedFS server, on its
  own free ports and data dir, which only that worker's outage tests stop), or its test file is in
  ``ONE_WORKER`` below, so one worker runs all of that file's tests (the Go build, the fresh install);
- a test taking many seconds even on a quiet box is marked ``@pytest.mark.slow`` (``slow(60)``: about
  how many): started first, longest first, so the run does not end waiting on it alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import gotool

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "chromem-go-v0.7.0"
STORE_PLAIN = FIXTURES / "store-plain"
STORE_GZ = FIXTURES / "store-gz"
DAMAGED = FIXTURES / "damaged"
# The real chromem-go v0.7.0 as a command: tests/chromem (the project's own program over the module),
# built on first use (tests/gotool.py); where it cannot be built, the harness in ../shared beside the
# clone; tests that need the real loader skip only when neither is there.
SHARED = Path(os.environ.get("GUARDIAN_TEST_SHARED", ROOT.parent / "shared"))
CHROMEMH = SHARED / "chromem-harness" / "chromemh"
CHROMEM_SOURCE = ROOT / "tests" / "chromem"


def real_chromem() -> Path:
    """The real chromem as a command, built if need be; pytest.skip with both reasons where none is here."""
    try:
        return gotool.build(CHROMEM_SOURCE, "chromem", needs_modules=True)
    except gotool.BuildFailed as exc:
        if CHROMEMH.is_file() and os.access(CHROMEMH, os.X_OK):
            return CHROMEMH
        pytest.skip(f"the real chromem is not here: {exc}, and no harness at {CHROMEMH}")


def pytest_configure(config):
    """The suite starts well over a thousand Python processes (``guardian`` itself, real children).
    Where PYTHONDONTWRITEBYTECODE is set, each of them compiles every guardian module from source
    again - about a third of a short command's CPU. The processes get a byte-code cache instead, in
    pytest's cache folder (PYTHONPYCACHEPREFIX: nothing is written beside the sources). Set here,
    before xdist starts its workers, so they and every process they start inherit it."""
    cache = getattr(config, "cache", None)
    if cache is not None and os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
        os.environ["PYTHONPYCACHEPREFIX"] = str(cache.mkdir("pycache"))
        del os.environ["PYTHONDONTWRITEBYTECODE"]


def slow_first(item) -> float:
    """Sort key: tests marked ``slow`` first, the longest (``slow(seconds)``, a rough figure) first of all."""
    marker = item.get_closest_marker("slow")
    return -(marker.args[0] if marker and marker.args else 10) if marker else 0


def pytest_collection_modifyitems(config, items):
    items.sort(key=slow_first)   # stable: otherwise in file order


# Test files whose tests all run on one worker: a module or session fixture there is too costly to
# make in several workers at once. (Not xdist's own ``--dist loadgroup``: with pytest 9.2 it silently
# stops grouping, pytest-xdist issue 1386.)
ONE_WORKER = (
    "tests/format/test_go_interop.py",   # builds the Go checker once (session fixture gobcheck)
    "tests/test_newcomer.py",            # one fresh copy of the repository and its install for both tests
)


def pytest_xdist_make_scheduler(config, log):
    """xdist's ``load`` (each test to the next free worker, in the order above), but the tests of a file
    in ONE_WORKER go to one worker together; files with more tests go first (xdist's reordering)."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LoadWithFilesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in ONE_WORKER else nodeid

    return LoadWithFilesTogether(config, log)


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
    """Path of the real chromem loader/writer (tests/chromem built from chromem-go v0.7.0, see
    :func:`real_chromem`); skips the test cleanly where it cannot be had."""
    return real_chromem()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """Build the real chromem before any test runs (once, in the process that starts the workers):
    a cold build takes a minute on a loaded box, which must not count against a test's timeout."""
    if not hasattr(session.config, "workerinput"):
        try:
            gotool.build(CHROMEM_SOURCE, "chromem", needs_modules=True)
        except gotool.BuildFailed:
            pass   # the tests that need it fall back or skip, saying why


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
            check: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m guardian ARGS` in a real subprocess (in ``cwd``, if given: relative paths as a
    user's shell would pass them); returns the CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "guardian", *args],
        env=full_env, input=input, capture_output=True, timeout=timeout, cwd=cwd,
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
