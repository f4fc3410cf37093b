"""Which processes use a store (real processes): holding a file, naming the store, a contextd by the
store it decides on (its config file, its environment, its default path: as contextd decides, read with
guardian.contextd_config); guardian itself and the asking process's own ancestry are not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.restoring.users import users_of

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc (Linux)")

WAIT = """
import os, sys
if len(sys.argv) > 1 and sys.argv[1] == "hold":
    fd = os.open(sys.argv[2], os.O_WRONLY)
print("ready", flush=True)
sys.stdin.readline()
"""


def found(store: Path) -> dict[int, tuple[str, bool]]:
    return {u.pid: (u.why, u.certain) for u in users_of(store).users}


def named_contextd(tmp_path: Path) -> str:
    """A program called contextd (python under that name): what the scan recognises contextd by."""
    link = tmp_path / "bin" / "contextd"
    link.parent.mkdir()
    link.symlink_to(sys.executable)
    return str(link)


def test_a_holder_and_a_process_naming_the_store_are_found_and_guardian_is_not(plain_store, ready_process):
    doc = next((plain_store / "40917930").glob("0*.gob"))
    holder = ready_process([sys.executable, "-c", WAIT, "hold", str(doc)])
    naming = ready_process([sys.executable, "-c", WAIT, f"--store={plain_store}/."])
    elsewhere = ready_process([sys.executable, "-c", WAIT, "/tmp"])
    guardian = ready_process([sys.executable, "-c", WAIT, "-m", "guardian", str(plain_store)])   # named like guardian
    users = found(plain_store)
    assert users[holder.pid][0].startswith("holds 1 store file(s) open for writing (40917930/")
    assert users[naming.pid] == ("names the store on its command line", True)
    assert elsewhere.pid not in users and guardian.pid not in users and os.getpid() not in users


def contextd_home(tmp_path: Path, name: str, config: str | None = None, default_store: Path | None = None,
                  mode: int = 0o600) -> Path:
    """A HOME for a contextd: its ~/.config/contextd/ with a config.yaml (``mode``: contextd reads one
    only at 0600 or 0400) and the default store path a link to ``default_store``."""
    home = tmp_path / name
    (home / ".config" / "contextd").mkdir(parents=True)
    if config is not None:
        (home / ".config" / "contextd" / "config.yaml").write_text(config)
        (home / ".config" / "contextd" / "config.yaml").chmod(mode)
    if default_store is not None:
        (home / ".config" / "contextd" / "vectorstore").symlink_to(default_store)
    return home


def test_a_contextd_is_found_by_the_store_it_decides_on_as_contextd_decides(plain_store, tmp_path, ready_process):
    contextd = named_contextd(tmp_path)

    def start(home: Path, cwd: Path | None = None, **env) -> subprocess.Popen:
        return ready_process([contextd, "-c", WAIT], env={"HOME": str(home), "PATH": os.environ["PATH"], **env},
                             cwd=cwd)

    by_default = start(contextd_home(tmp_path, "default", default_store=plain_store))
    by_file = start(contextd_home(tmp_path, "file", f"vectorstore:\n  chromem:\n    path: {plain_store}\n"))
    relative = start(contextd_home(tmp_path, "relative", f"vectorstore:\n  chromem:\n    path: {plain_store.name}\n"),
                     cwd=plain_store.parent)                      # relative to contextd's working folder
    by_env = start(contextd_home(tmp_path, "env"), **{"VECTORSTORE_CHROMEM.PATH": str(plain_store)})
    # CONTEXTD_VECTORSTORE_CHROMEM_PATH counts only when contextd ignores its config file (here: 0644)
    fallback = start(contextd_home(tmp_path, "fallback", "vectorstore: {}\n", mode=0o644),
                     CONTEXTD_VECTORSTORE_CHROMEM_PATH=str(plain_store))
    ignored = start(contextd_home(tmp_path, "ignored"), CONTEXTD_VECTORSTORE_CHROMEM_PATH=str(plain_store))
    elsewhere = start(contextd_home(tmp_path, "elsewhere", "vectorstore:\n  chromem:\n    path: /somewhere/else\n",
                                    default_store=plain_store))
    not_chromem = start(contextd_home(tmp_path, "qdrant", "vectorstore:\n  provider: qdrant\n",
                                      default_store=plain_store))
    users = found(plain_store)
    config = tmp_path / "file" / ".config" / "contextd" / "config.yaml"
    assert users[by_default.pid] == ("a contextd using this store (contextd's default path)", True)
    assert users[by_file.pid] == (f"a contextd using this store (its config file {config})", True)
    assert users[relative.pid][1] and "its config file" in users[relative.pid][0]
    assert users[by_env.pid] == ("a contextd using this store (its environment)", True)
    assert users[fallback.pid] == ("a contextd using this store (its environment)", True)
    for other in (ignored, elsewhere, not_chromem):   # contextd uses another folder, or no chromem store
        assert other.pid not in users
