"""`guardian install` through the real CLI, with HOME pointing at a temporary folder."""

import json
import os
import plistlib
import stat
import sys

import pytest


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


def install(cli, home, *args):
    env = {"HOME": str(home), "XDG_CONFIG_HOME": ""}
    return cli("install", *args, env=env)


def test_dry_run_prints_the_unit_and_writes_nothing(cli, home, plain_store):
    proc = install(cli, home, "--systemd", "--dry-run", "--store", str(plain_store), "--", "sh", "-c", "sleep 1")
    assert proc.returncode == 0, proc.stderr_text
    target = home / ".config/systemd/user/guardian.service"
    assert f"# systemd service file: {target}" in proc.stdout_text
    assert "Type=notify" in proc.stdout_text
    exec_start = next(line for line in proc.stdout_text.splitlines() if line.startswith("ExecStart="))
    assert f"run --store {plain_store} --state-dir" in exec_start
    assert exec_start.endswith('-- /usr/bin/sh -c "sleep 1"') or exec_start.endswith('-- /bin/sh -c "sleep 1"')
    assert "systemctl --user daemon-reload && systemctl --user enable --now guardian" in proc.stdout_text
    assert not (home / ".config").exists()
    config_lines = [line[4:] for line in proc.stdout_text.splitlines() if line.startswith("#   ")]
    entry = json.loads("\n".join(config_lines))["mcpServers"]["contextd"]
    assert entry["args"][-6:] == ["mcp", "--store", str(plain_store), "--", "contextd", "--mcp"]


def test_install_writes_the_unit_atomically_and_is_idempotent(cli, home, plain_store):
    proc = install(cli, home, "--systemd", "--store", str(plain_store))
    target = home / ".config/systemd/user/guardian.service"
    assert proc.returncode == 0, proc.stderr_text
    assert proc.stdout_text.startswith(f"wrote {target}")
    assert "systemctl --user enable --now guardian" in proc.stdout_text
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert "ExecStart=" in target.read_text() and "WatchdogSec=60" in target.read_text()
    again = install(cli, home, "--systemd", "--store", str(plain_store))
    assert again.returncode == 0 and again.stdout_text.startswith(f"unchanged {target}")
    assert [p.name for p in target.parent.iterdir()] == ["guardian.service"]


def test_a_different_existing_unit_is_kept(cli, home, plain_store):
    target = home / ".config/systemd/user/guardian.service"
    target.parent.mkdir(parents=True)
    target.write_text("# my own edits\n")
    refused = install(cli, home, "--systemd", "--store", str(plain_store))
    assert refused.returncode == 2 and "already exists" in refused.stderr_text and "--force" in refused.stderr_text
    assert target.read_text() == "# my own edits\n"
    forced = install(cli, home, "--systemd", "--force", "--store", str(plain_store))
    assert forced.returncode == 0, forced.stderr_text
    backups = [p for p in target.parent.iterdir() if p.name.endswith(".bak")]
    assert len(backups) == 1 and backups[0].read_text() == "# my own edits\n"
    assert "Type=notify" in target.read_text()


def test_launchd_writes_the_plist_and_its_log_folder(cli, home, plain_store):
    proc = install(cli, home, "--launchd", "--store", str(plain_store), "--", sys.executable, "-V")
    assert proc.returncode == 0, proc.stderr_text
    target = home / "Library/LaunchAgents/io.guardian.sidecar.plist"
    plist = plistlib.loads(target.read_bytes())
    assert plist["ProgramArguments"][-3:] == ["--", sys.executable, "-V"]
    assert plist["StandardErrorPath"] == str(home / "Library/Logs/guardian/guardian.err.log")
    assert (home / "Library/Logs/guardian").is_dir()
    assert f"launchctl bootstrap gui/{os.getuid()} {target}" in proc.stdout_text
