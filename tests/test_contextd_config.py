"""guardian guards the store contextd uses: contextd's config file and environment, read as contextd reads
them (real files in a temporary HOME, real environments, the real CLI)."""

from __future__ import annotations

import json
import os

import pytest

from guardian.config import load_config
from tests.conftest import STORE_GZ, copy_store, run_cli

PATH_ENV, COMPRESS_ENV = "CONTEXTD_VECTORSTORE_CHROMEM_PATH", "CONTEXTD_VECTORSTORE_CHROMEM_COMPRESS"


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    (path / ".config" / "contextd").mkdir(parents=True)
    return path


def contextd_yaml(home, text: str, mode: int = 0o600):
    path = home / ".config" / "contextd" / "config.yaml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def guardian_config(tmp_path, environ: dict, text: str = "", **overrides):
    toml = tmp_path / "guardian.toml"
    toml.write_text(text)
    return load_config(toml, environ=environ, overrides=overrides)


def test_a_store_moved_in_contextds_config_is_the_one_every_command_guards(home, tmp_path):
    store = copy_store(STORE_GZ, home / "stores" / "ctx")
    config_file = contextd_yaml(home, "vectorstore:\n  chromem:\n    path: ~/stores/ctx\n    compress: true\n")
    env = {"HOME": str(home), "GUARDIAN_STATE_DIR": str(tmp_path / "state"),
           "GUARDIAN_CONFIG": str(tmp_path / "none.toml")}
    full = {k: v for k, v in os.environ.items() if k not in ("GUARDIAN_STORE", "GUARDIAN_COMPRESS")}
    done = run_cli("check", "--json", env={**full, **env})
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr_text                # it used to guard the empty default path
    assert report["store"] == str(store) and report["compress"] is True
    assert report["store_source"] == {"store": "contextd config file", "compress": "contextd config file",
                                      "contextd_config": str(config_file)}
    status = run_cli("status", env={**full, **env}).stdout_text
    assert f"store path: {store} (from contextd config file {config_file}); compress true (contextd config file" \
        in status


def test_without_a_config_file_it_is_contextds_default_and_its_environment_names_are_not_read(home, tmp_path):
    """contextd's file loader succeeds without a file, so CONTEXTD_VECTORSTORE_CHROMEM_PATH (read only by its
    environment-only fallback) changes nothing, and compress is false."""
    config = guardian_config(tmp_path, {"HOME": str(home), PATH_ENV: "/elsewhere", COMPRESS_ENV: "true"})
    assert config.store == f"{home}/.config/contextd/vectorstore" and config.compress == "false"
    assert (config.origin.store, config.origin.compress, config.origin.warning) == ("default", "default", "")
    # a name with a dot reaches vectorstore.chromem.* through contextd's environment overlay, file or not
    config = guardian_config(tmp_path, {"HOME": str(home), "VECTORSTORE_CHROMEM.PATH": "~/dotted",
                                        "VECTORSTORE_CHROMEM.COMPRESS": "1"})
    assert (config.store, config.compress, config.origin.store) == (f"{home}/dotted", "true", "contextd env")


@pytest.mark.parametrize("text, mode, why", [
    ("vectorstore:\n  chromem:\n    path: /from/file\n", 0o644, "insecure permissions 0644"),
    ("vectorstore:\n  chromem:\n    path: [/from/file\n", 0o600, "not valid YAML"),
    ("vectorstore:\n  chromem:\n    path: /from/file\n    compress: yes\n", 0o600, "cannot be read as a bool"),
    ("vectorstore:\n  chromem:\n    path: ~/a/../from/file\n", 0o600, "traversal"),
    ("vectorstore:\n  chromem:\n    path: /from/file\nserver:\n  http_port: 70000\n", 0o600, "server port"),
    ("vectorstore:\n  chromem: /from/file\n", 0o600, "expected a map"),
    ("vectorstore:\n  chromem:\n    path: /from/file\nreasoningbank:\n  granularity: daily\n", 0o600, "GRANULARITY"),
    ("- vectorstore\n", 0o600, "not a mapping"),
])
def test_a_config_file_contextd_refuses_leaves_contextd_with_its_environment_and_guardian_says_so(
        home, tmp_path, text, mode, why):
    contextd_yaml(home, text, mode)
    config = guardian_config(tmp_path, {"HOME": str(home), PATH_ENV: "~/from-env", COMPRESS_ENV: "TRUE"})
    assert (config.store, config.compress) == (f"{home}/from-env", "true")
    assert (config.origin.store, config.origin.compress) == ("contextd env", "contextd env")
    assert why in config.origin.warning and "\n" not in config.origin.warning
    config = guardian_config(tmp_path, {"HOME": str(home)})
    assert (config.store, config.origin.store) == (f"{home}/.config/contextd/vectorstore", "default")


def test_the_warning_is_one_line_on_stderr_and_status_and_check_carry_it(home, tmp_path):
    contextd_yaml(home, "vectorstore:\n  chromem:\n    path: /x\n", 0o640)
    env = {**os.environ, "HOME": str(home), "GUARDIAN_STATE_DIR": str(tmp_path / "state"),
           "GUARDIAN_CONFIG": str(tmp_path / "none.toml")}
    env.pop("GUARDIAN_STORE", None)
    done = run_cli("check", "--json", env=env)
    lines = done.stderr_text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: contextd ignores its config file") and "0640" in lines[0]
    assert "0640" in json.loads(done.stdout)["store_source"]["warning"]
    status = json.loads(run_cli("status", "--json", env=env).stdout)
    assert any("0640" in w for w in status["warnings"]) and status["store_source"]["store"] == "default"


def test_contextd_reads_its_file_only_where_it_allows_and_decodes_it_as_go_would(home, tmp_path):
    outside = tmp_path / "dotfiles" / "contextd.yaml"
    outside.parent.mkdir()
    outside.write_text("vectorstore:\n  chromem:\n    path: /from/dotfiles\n")
    os.chmod(outside, 0o600)
    (home / ".config" / "contextd" / "config.yaml").symlink_to(outside)   # resolves outside ~/.config/contextd
    config = guardian_config(tmp_path, {"HOME": str(home)})
    assert config.origin.store == "default" and "only under ~/.config/contextd/" in config.origin.warning
    (home / ".config" / "contextd" / "config.yaml").unlink()
    # Go field names match whatever the case; strings and numbers are weakly typed; a timestamp-like scalar
    # is a string; `vector_store` is no field of contextd's (ignored)
    contextd_yaml(home, "VectorStore:\n  Chromem:\n    Path: ~stores/2026-01-01\n    Compress: \"t\"\n"
                        "vector_store:\n  chromem:\n    path: /ignored\n")
    config = guardian_config(tmp_path, {"HOME": str(home)})
    assert (config.store, config.compress, config.origin.warning) == (f"{home}/stores/2026-01-01", "true", "")
    contextd_yaml(home, "vectorstore:\n  chromem:\n    path: relative/store\n    compress: 0\n")
    config = guardian_config(tmp_path, {"HOME": str(home)})
    assert (config.store, config.compress) == (os.path.abspath("relative/store"), "false")
    contextd_yaml(home, "vectorstore:\n  provider: qdrant\n")
    assert "qdrant" in guardian_config(tmp_path, {"HOME": str(home)}).origin.warning


def test_a_store_given_to_guardian_wins_and_guardians_compress_wins_over_contextds(home, tmp_path):
    contextd_yaml(home, "vectorstore:\n  chromem:\n    path: /from/contextd\n    compress: true\n")
    environ = {"HOME": str(home)}
    assert guardian_config(tmp_path, environ, 'compress = "auto"').compress == "auto"
    config = guardian_config(tmp_path, environ, 'compress = "auto"')
    assert (config.store, config.origin.store, config.origin.compress) == ("/from/contextd", "contextd config file",
                                                                           "guardian config")
    config = guardian_config(tmp_path, environ, 'store = "/from/guardian"')
    assert (config.store, config.compress, config.origin.store) == ("/from/guardian", "auto", "guardian config")
    config = guardian_config(tmp_path, {**environ, "GUARDIAN_STORE": "/env"}, 'store = "/from/guardian"')
    assert (config.store, config.origin.store, config.origin.contextd_config) == ("/env", "env", "")
    config = guardian_config(tmp_path, {**environ, "GUARDIAN_STORE": "/env"}, store="/flag")
    assert (config.store, config.origin.store) == ("/flag", "flag")


def test_install_leaves_contextds_store_to_be_read_when_the_service_starts(home, tmp_path):
    contextd_yaml(home, "vectorstore:\n  chromem:\n    path: ~/stores/ctx\n")
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": "", "GUARDIAN_STATE_DIR": str(tmp_path / "state"),
           "GUARDIAN_CONFIG": str(tmp_path / "none.toml")}
    env.pop("GUARDIAN_STORE", None)
    done = run_cli("install", "--systemd", "--dry-run", env=env)
    exec_start = next(line for line in done.stdout_text.splitlines() if line.startswith("ExecStart="))
    assert " run --state-dir" in exec_start and "--store" not in exec_start   # as the contextd it starts reads it
    done = run_cli("install", "--systemd", "--dry-run", "--store", str(tmp_path / "s"), "--compress", "true", env=env)
    assert f"run --store {tmp_path / 's'} --compress true" in done.stdout_text
