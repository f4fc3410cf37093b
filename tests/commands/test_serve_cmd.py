"""`guardian serve` as a real subprocess: the index + watcher + HTTP subset of the one assembly."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from guardian.format import chromem
from guardian.local.paths import StatePaths
from tests.waiting import wait_until


def start_serve(store, tmp_path, *extra, env=None, fd3=None) -> tuple[subprocess.Popen, str]:
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "guardian", "serve", "--store", str(store), "--port", "0", *extra],
                            env=env or dict(os.environ), stdout=subprocess.PIPE, stderr=open(log, "wb"),
                            **({} if fd3 is None else {"pass_fds": (3,), "preexec_fn": lambda: os.dup2(fd3, 3)}))
    found = {}

    def announced():
        match = re.search(r"serving .* on (http://127\.0\.0\.1:\d+)", log.read_text())
        found["url"] = match and match.group(1)
        return found["url"] or proc.poll() is not None

    assert wait_until(announced, timeout=60) and found["url"], log.read_text()
    return proc, found["url"]


def get(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url, timeout=10).read())


def documents_of(url: str, name: str) -> int:
    return next(c["documents"] for c in get(f"{url}/v1/collections")["collections"] if c["name"] == name)


def add_document(store, doc_id: str) -> None:
    folder = store / chromem.collection_dir_name("webapp_memories")
    doc = chromem.Document(doc_id, {"project_id": "webapp"}, np.ones(384, dtype=np.float32) / np.sqrt(384), "new")
    (folder / f"{chromem.document_stem(doc_id)}.gob").write_bytes(chromem.encode_document(doc))


def stop(proc) -> tuple[int, bytes]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


@pytest.mark.parametrize("watch", [True, False], ids=["watcher", "polling"])
def test_serve_answers_and_follows_new_documents(plain_store, state_dir, tmp_path, watch):
    proc, url = start_serve(plain_store, tmp_path, *([] if watch else ["--no-watch"]))
    try:
        assert get(f"{url}/readyz")["ready"] is True  # serve builds the index before it listens
        assert get(f"{url}/healthz") == {"healthy": True}
        before = documents_of(url, "webapp_memories")
        add_document(plain_store, "serve-new-1")
        assert wait_until(lambda: documents_of(url, "webapp_memories") == before + 1, timeout=60)
        assert get(f"{url}/v1/memories/serve-new-1")["content"] == "new"   # the memory routes are served too
        status = get(f"{url}/v1/status")
        assert status["sidecar"]["running"] is False  # serve is no sidecar: it writes no status file
    finally:
        code, out = stop(proc)
    assert code == 0 and out == b""  # nothing on stdout


def test_serve_rereads_the_store_on_sighup(plain_store, state_dir, tmp_path):
    proc, url = start_serve(plain_store, tmp_path, "--no-watch")
    try:
        proc.send_signal(signal.SIGHUP)  # serve survives it (it used to be killed by SIGHUP)
        assert get(f"{url}/healthz") == {"healthy": True}
        assert proc.poll() is None
    finally:
        code, _ = stop(proc)
    assert code == 0


def test_serve_next_to_a_running_sidecar_needs_no_lock(plain_store, state_dir, tmp_path):
    paths = StatePaths.for_store(plain_store, str(state_dir)).ensure()
    fd = os.open(paths.root / "sidecar.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running sidecar holds it
    try:
        proc, url = start_serve(plain_store, tmp_path)
        try:
            assert get(f"{url}/readyz")["ready"] is True
        finally:
            code, _ = stop(proc)
        assert code == 0
    finally:
        os.close(fd)


def test_serve_ignores_socket_activation_meant_for_another_process(plain_store, state_dir, tmp_path):
    """An inherited LISTEN_PID (cheroot would serve on fd 3, here a plain file) must not stop serve from listening."""
    decoy = os.open(tmp_path / "decoy", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        env = dict(os.environ, LISTEN_PID="1", LISTEN_FDS="1", LISTEN_FDNAMES="http")
        proc, url = start_serve(plain_store, tmp_path, "--no-watch", env=env, fd3=decoy)
    finally:
        os.close(decoy)
    try:
        assert get(f"{url}/readyz")["ready"] is True
    finally:
        code, _ = stop(proc)
    assert code == 0
    assert (tmp_path / "decoy").read_bytes() == b""
