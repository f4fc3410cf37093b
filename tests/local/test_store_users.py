"""Which processes use a store (real processes): holding a file, naming the store, a contextd by its
environment or its default path; guardian itself and the asking process's own ancestry are not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.local.store_users import store_users

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc (Linux)")

WAIT = """
import os, sys
if len(sys.argv) > 1 and sys.argv[1] == "hold":
    fd = os.open(sys.argv[2], os.O_WRONLY)
print("ready", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def spawn():
    started: list[subprocess.Popen] = []

    def start(argv: list[str], env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().strip() == "ready"
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stdin.close()
        proc.wait(timeout=30)


def found(store: Path) -> dict[int, tuple[str, bool]]:
    return {u.pid: (u.why, u.certain) for u in store_users(store).users}


def named_contextd(tmp_path: Path) -> str:
    """A program called contextd (python under that name): what the scan recognises contextd by."""
    link = tmp_path / "bin" / "contextd"
    link.parent.mkdir()
    link.symlink_to(sys.executable)
    return str(link)


def test_a_holder_and_a_process_naming_the_store_are_found_and_guardian_is_not(plain_store, spawn):
    doc = next((plain_store / "40917930").glob("0*.gob"))
    holder = spawn([sys.executable, "-c", WAIT, "hold", str(doc)])
    naming = spawn([sys.executable, "-c", WAIT, f"--store={plain_store}/."])
    elsewhere = spawn([sys.executable, "-c", WAIT, "/tmp"])
    guardian = spawn([sys.executable, "-c", WAIT, "-m", "guardian", str(plain_store)])   # named like guardian
    users = found(plain_store)
    assert users[holder.pid][0].startswith("holds 1 store file(s) open for writing (40917930/")
    assert users[naming.pid] == ("names the store on its command line", True)
    assert elsewhere.pid not in users and guardian.pid not in users and os.getpid() not in users


def test_a_contextd_is_found_by_its_environment_or_its_default_path(plain_store, tmp_path, spawn):
    contextd = named_contextd(tmp_path)
    by_env = spawn([contextd, "-c", WAIT], env={**os.environ, "CONTEXTD_VECTORSTORE_CHROMEM_PATH": str(plain_store)})
    home = tmp_path / "home"
    (home / ".config" / "contextd").mkdir(parents=True)
    (home / ".config" / "contextd" / "vectorstore").symlink_to(plain_store)
    by_default = spawn([contextd, "-c", WAIT], env={"HOME": str(home), "PATH": os.environ["PATH"]})
    other = spawn([contextd, "-c", WAIT], env={"HOME": str(tmp_path), "PATH": os.environ["PATH"]})
    users = found(plain_store)
    assert users[by_env.pid] == ("a contextd using this store (its environment)", True)
    assert users[by_default.pid] == ("a contextd using this store (contextd's default path)", True)
    assert other.pid not in users                                  # its store is another folder
    (home / ".config" / "contextd" / "config.yaml").write_text("vectorstore: {}\n")
    why, certain = found(plain_store)[by_default.pid]
    assert not certain and "may use this store" in why            # its config file may name another path
