"""`guardian install` through the real CLI, with HOME pointing at a temporary folder."""

import json
import os
import plistlib
import shutil
import stat
import sys

import pytest

from guardian.errors import ExitCode
from tests.conftest import STORE_PLAIN


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


def install(cli, home, *args, env=None, cwd=None):
    """The default state dir (not the test's, which is under /tmp): what most users install with."""
    env = {"HOME": str(home), "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": "", "GUARDIAN_STATE_DIR": "", **(env or {})}
    return cli("install", *args, env=env, cwd=cwd)


def exec_start(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("ExecStart="))


def mcp_entry(stdout: str) -> dict:
    lines = [line[4:] for line in stdout.splitlines() if line.startswith("#   ")]
    return json.loads("\n".join(lines))["mcpServers"]["contextd"]


def test_dry_run_prints_the_unit_and_writes_nothing(cli, home, plain_store):
    proc = install(cli, home, "--systemd", "--dry-run", "--store", str(plain_store), "--", "sh", "-c", "sleep 1")
    assert proc.returncode == 0, proc.stderr_text
    target = home / ".config/systemd/user/guardian.service"
    assert f"# systemd service file: {target}" in proc.stdout_text
    assert "Type=notify" in proc.stdout_text
    line = exec_start(proc.stdout_text)
    assert f"run --store {plain_store} -- " in line and "--state-dir" not in line   # the default: the service's own
    assert line.endswith('-- /usr/bin/sh -c "sleep 1"') or line.endswith('-- /bin/sh -c "sleep 1"')
    assert "systemctl --user daemon-reload && systemctl --user enable --now guardian" in proc.stdout_text
    assert not (home / ".config").exists()
    args = mcp_entry(proc.stdout_text)["args"]
    assert args[-6:-2] == ["mcp", "--store", str(plain_store), "--"]
    assert os.path.basename(args[-2]) == "contextd" and args[-1] == "--mcp"


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


@pytest.fixture
def readme_demo(tmp_path, home):
    """README's demo shell: in a checkout (examples/store), GUARDIAN_STORE=examples/store (relative)
    and GUARDIAN_STATE_DIR in /tmp; contextd installed on PATH (a stand-in program)."""
    work = tmp_path / "checkout"
    shutil.copytree(STORE_PLAIN, work / "examples" / "store")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    contextd = bin_dir / "contextd"
    contextd.write_text("#!/bin/sh\nexec sleep 1000\n")
    contextd.chmod(0o755)
    state = tmp_path / "guardian-demo"
    env = {"GUARDIAN_STORE": "examples/store", "GUARDIAN_STATE_DIR": str(state),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return work, env, contextd, state


def test_the_readme_demo_environment_is_refused_with_absolute_paths_shown(cli, home, readme_demo):
    """README's `install --dry-run` pasted after the demo's `export`: the unit shows the absolute store
    and the demo's state dir, the MCP entry the same ones and contextd's resolved path; the state dir
    in /tmp is named and the install refused (exit 2), the dry run included; nothing is written."""
    work, env, contextd, state = readme_demo
    store = work / "examples" / "store"
    dry = install(cli, home, "--systemd", "--dry-run", "--", "contextd", "--http-port", "9090", env=env, cwd=work)
    assert dry.returncode == ExitCode.USAGE, dry.stderr_text
    assert exec_start(dry.stdout_text).endswith(
        f" run --store {store} --state-dir {state} -- {contextd} --http-port 9090")
    assert mcp_entry(dry.stdout_text)["args"][-8:] == ["mcp", "--store", str(store), "--state-dir", str(state),
                                                       "--", str(contextd), "--mcp"]
    warning, error = dry.stderr_text.strip().splitlines()[-2:]
    assert warning.startswith(f"warning: the state dir {state} is in ") and "temporary folder" in warning
    assert error.startswith("error: install refused for the 1 problem above; this dry run wrote nothing")
    assert "--force" in error
    real = install(cli, home, "--systemd", "--", "contextd", "--http-port", "9090", env=env, cwd=work)
    assert real.returncode == ExitCode.USAGE and "nothing was written" in real.stderr_text
    assert not (home / ".config").exists()
    forced = install(cli, home, "--systemd", "--force", "--", "contextd", env=env, cwd=work)
    assert forced.returncode == 0 and "temporary folder" in forced.stderr_text
    unit = (home / ".config/systemd/user/guardian.service").read_text()
    assert f"run --store {store} --state-dir {state} -- {contextd}\n" in unit


def test_a_store_that_does_not_exist_is_refused_unless_forced(cli, home, tmp_path):
    missing = tmp_path / "typo" / "vectorstore"
    refused = install(cli, home, "--systemd", "--store", str(missing))
    assert refused.returncode == ExitCode.USAGE
    assert f"warning: the store {missing} does not exist: the service would guard nothing" in refused.stderr_text
    assert not (home / ".config").exists()
    forced = install(cli, home, "--systemd", "--force", "--store", str(missing))   # a new machine: contextd makes it
    assert forced.returncode == 0 and "does not exist" in forced.stderr_text
    assert f"run --store {missing}\n" in (home / ".config/systemd/user/guardian.service").read_text()


@pytest.mark.parametrize("program", ["no-such-contextd", "/nonexistent/bin/contextd"])
def test_a_child_that_cannot_be_found_is_refused_even_with_force(cli, home, plain_store, program):
    for flags in (["--dry-run"], ["--force"]):
        proc = install(cli, home, "--systemd", *flags, "--store", str(plain_store), "--", program, "--mcp")
        assert proc.returncode == ExitCode.NOT_RUNNABLE, proc.stderr_text
        line = proc.stderr_text.strip().splitlines()[-1]
        assert line.startswith(f"error: the child command {program} is not") and "full path" in line
    assert not (home / ".config").exists()


def test_a_state_dir_in_the_runtime_folder_or_tmpdir_is_temporary_too(cli, home, plain_store, tmp_path):
    runtime = tmp_path / "run-user"
    for env in ({"XDG_RUNTIME_DIR": str(runtime)}, {"TMPDIR": str(runtime)}):
        proc = install(cli, home, "--systemd", "--dry-run", "--store", str(plain_store),
                       "--state-dir", str(runtime / "guardian"), env=env)
        assert proc.returncode == ExitCode.USAGE and f"is in {runtime}, a temporary folder" in proc.stderr_text
