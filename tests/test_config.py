"""Config: TOML file < GUARDIAN_* environment < flags, validated into one frozen object."""

from __future__ import annotations

import dataclasses

import pytest

from guardian.config import Config, load_config
from guardian.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_are_contextds_store_and_hourly_24(tmp_path):
    config = load_config(environ={"HOME": str(tmp_path)}, path=write(tmp_path, ""))
    assert config.store == f"{tmp_path}/.config/contextd/vectorstore"   # contextd's default, as contextd expands it
    assert (config.snapshot_interval_minutes, config.keep_last, config.compress) == (60.0, 24, "false")
    assert (config.origin.store, config.origin.compress) == ("default", "default")
    assert config.http_host == "127.0.0.1"
    given = load_config(environ={"HOME": str(tmp_path), "GUARDIAN_STORE": "/s"}, path=write(tmp_path, ""))
    assert (given.store, given.compress, given.origin.store, given.origin.compress) == ("/s", "auto", "env", "detected")


def test_file_then_environment_then_flags(tmp_path):
    path = write(tmp_path, 'keep_last = 12\nhttp_port = 9000\ncollection_names = ["a_memories"]\n')
    env = {"GUARDIAN_HTTP_PORT": "9100", "GUARDIAN_WATCH": "false"}
    config = load_config(path, environ=env, overrides={"http_port": 9200, "store": None})
    assert config.keep_last == 12 and config.http_port == 9200 and config.watch is False
    assert config.collection_names == ("a_memories",)
    assert load_config(path, environ=env).http_port == 9100


def test_config_is_frozen(tmp_path):
    config = load_config(write(tmp_path, ""), environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.keep_last = 3  # type: ignore[misc]


@pytest.mark.parametrize("text, field", [
    ('keep_last = "many"', "keep_last"),
    ("keep_last = 0", "keep_last"),
    ('compress = "maybe"', "compress"),
    ("http_port = 70000", "http_port"),
    ("backoff_max = 0.1\nbackoff_initial = 1", "backoff_max"),
    ("colour = 1", "colour"),
    ("mcp_early_grace = -1", "mcp_early_grace"),
    ('mcp_early_answers = "sometimes"', "mcp_early_answers"),
])
def test_errors_name_the_field(tmp_path, text, field):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), environ={})
    assert field in err.value.message


def test_environment_errors_name_the_variable(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ""), environ={"GUARDIAN_MAX_FAILURES": "lots"})
    assert "max_failures" in err.value.message and "GUARDIAN_MAX_FAILURES" in err.value.message


def test_broken_toml_and_missing_explicit_file_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(write(tmp_path, "keep_last = = 3"), environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_replace_validates_like_loading():
    with pytest.raises(ConfigError, match="http_port"):
        Config().replace(http_port=99999)
    assert Config().replace(http_port=0).http_port == 0


def test_cli_reports_a_bad_config_in_one_line(cli, tmp_path, plain_store):
    bad = write(tmp_path, "keep_last = -1\n")
    proc = cli("status", "--store", str(plain_store), "--config", str(bad))
    assert proc.returncode == 2
    lines = proc.stderr_text.strip().splitlines()
    assert len(lines) == 1 and "keep_last" in lines[0] and "Traceback" not in proc.stderr_text


def test_replica_urls_in_the_environment_may_hold_commas(tmp_path):
    env = {"GUARDIAN_REPLICAS": "s3://b/p?endpoint=http://127.0.0.1:8333&path_style=1,file:///mnt/a,b/guardian "
                                "file:///mnt/c\n"}
    config = load_config(environ=env, path=write(tmp_path, ""))
    assert config.replicas == ("s3://b/p?endpoint=http://127.0.0.1:8333&path_style=1",
                               "file:///mnt/a,b/guardian", "file:///mnt/c")
    old_style = load_config(environ={"GUARDIAN_REPLICAS": "file:///x, file:///y"}, path=write(tmp_path, ""))
    assert old_style.replicas == ("file:///x", "file:///y")
