"""Service files: rendered content, systemd-analyze verify / plutil -lint where they run, examples in the repo."""

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.runtime import service_files as service
from guardian.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def unit_fields(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line:
            key, value = line.split("=", 1)
            current.setdefault(key, []).append(value)
    return sections


def systemd_verify(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), SYSTEMD_LOG_COLOR="0")
    proc = subprocess.run([tool, "verify", "--user", str(unit)], capture_output=True, text=True, env=env, timeout=60)
    if "Failed to initialize manager" in proc.stderr or "Failed to lookup" in proc.stderr:
        proc = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, env=env, timeout=60)
        if "Failed to initialize manager" in proc.stderr:
            pytest.skip(f"systemd-analyze cannot run in this container: {proc.stderr.strip()}")
    return proc


def test_the_rendered_unit_has_the_required_fields():
    argv = ["/opt/guardian/bin/guardian", "run", "--store", "/data/my store", "--", "contextd", "--mcp"]
    unit = unit_fields(service.render_systemd_unit(service.systemd_command_line(argv), stop_timeout=10.0))
    svc = unit["Service"]
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["main"]
    assert svc["Restart"] == ["on-failure"] and svc["WatchdogSec"] == ["60"] and svc["KillMode"] == ["mixed"]
    assert int(svc["TimeoutStopSec"][0]) > 10
    assert svc["ExecStart"] == ['/opt/guardian/bin/guardian run --store "/data/my store" -- contextd --mcp']
    assert "PYTHONUNBUFFERED=1" in svc["Environment"]
    assert unit["Install"]["WantedBy"] == ["default.target"]


def test_the_stop_timeout_stays_above_guardians_own():
    assert service.service_stop_timeout(10.0) == 30
    assert service.service_stop_timeout(40.0) == 55
    assert service.service_stop_timeout(40.5) == 56


@pytest.mark.parametrize("arg, expected", [
    ("plain", "plain"),
    ("with space", '"with space"'),
    ("50%", "50%%"),
    ("$HOME", "$$HOME"),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("", '""'),
])
def test_systemd_quoting(arg, expected):
    assert service.systemd_quote(arg) == expected


def test_a_newline_in_an_argument_is_refused():
    with pytest.raises(UsageError):
        service.systemd_quote("a\nb")


def test_the_rendered_unit_passes_systemd_analyze_verify(tmp_path):
    argv = [sys.executable, "-m", "guardian", "run", "--store", str(tmp_path / "a store"), "--",
            sys.executable, "-c", "print('50% $HOME')"]
    unit = tmp_path / "guardian.service"
    unit.write_text(service.render_systemd_unit(service.systemd_command_line(argv), stop_timeout=10.0))
    proc = systemd_verify(unit, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "guardian.service" not in proc.stderr, proc.stderr  # no warnings about our unit


def test_verify_does_catch_a_broken_unit(tmp_path):
    unit = tmp_path / "guardian.service"
    unit.write_text(service.render_systemd_unit("relative/guardian run").replace("Restart=", "Restrat="))
    proc = systemd_verify(unit, tmp_path)
    assert proc.returncode != 0 or "Restrat" in proc.stderr


def test_the_rendered_plist_has_the_required_fields(tmp_path):
    data = service.render_launchd_plist(["/Users/a/bin/guardian", "run", "--", "contextd"],
                                        "/Users/a/Library/Logs/guardian", stop_timeout=10.0,
                                        environment={"PATH": "/usr/bin:/bin"})
    plist = plistlib.loads(data)
    assert plist["Label"] == "io.guardian.sidecar"
    assert plist["ProgramArguments"] == ["/Users/a/bin/guardian", "run", "--", "contextd"]
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardOutPath"].startswith("/Users/a/Library/Logs/guardian/")
    assert plist["StandardErrorPath"].startswith("/Users/a/Library/Logs/guardian/")
    assert plist["ProcessType"] == "Background" and plist["ExitTimeOut"] > 10
    assert plist["EnvironmentVariables"]["PATH"] == "/usr/bin:/bin"
    plutil = shutil.which("plutil")
    if plutil is None:
        pytest.skip("plutil is not available here (macOS only)")
    path = tmp_path / "io.guardian.sidecar.plist"
    path.write_bytes(data)
    proc = subprocess.run([plutil, "-lint", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["systemd/guardian.service", "launchd/io.guardian.sidecar.plist"])
def test_the_checked_in_examples_match_the_renderers(name):
    assert (ROOT / name).read_bytes() == service.example_files()[name]


def test_the_checked_in_plist_parses_and_unit_has_user_paths():
    plist = plistlib.loads((ROOT / "launchd/io.guardian.sidecar.plist").read_bytes())
    assert plist["RunAtLoad"] is True and plist["ProgramArguments"][1] == "run"
    unit = unit_fields((ROOT / "systemd/guardian.service").read_text())
    assert unit["Service"]["ExecStart"] == ["%h/.local/bin/guardian run"]


def test_plan_paths_follow_home_and_xdg_config_home(tmp_path):
    home = tmp_path / "home"
    plan = service.plan_service(service.SYSTEMD, ["/g", "run"], home, {}, uid=1000)
    assert plan.path == home / ".config/systemd/user/guardian.service"
    assert plan.enable_commands == ("systemctl --user daemon-reload && systemctl --user enable --now guardian",)
    xdg = service.plan_service(service.SYSTEMD, ["/g", "run"], home, {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}, 1000)
    assert xdg.path == tmp_path / "cfg/systemd/user/guardian.service"
    mac = service.plan_service(service.LAUNCHD, ["/g", "run"], home, {"PATH": "/bin"}, uid=501)
    assert mac.path == home / "Library/LaunchAgents/io.guardian.sidecar.plist"
    assert mac.enable_commands[0].endswith(f"launchctl bootstrap gui/501 {mac.path}")
    with pytest.raises(UsageError):
        service.plan_service("upstart", ["/g"], home, {}, 0)


def test_guardian_executable_prefers_the_running_script_then_path_then_python(tmp_path):
    script = tmp_path / "bin" / "guardian"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    assert service.guardian_executable(str(script), which=lambda name: None) == [str(script)]
    on_path = service.guardian_executable("/x/__main__.py", which=lambda name: "/usr/bin/guardian")
    assert on_path == ["/usr/bin/guardian"]
    no_guardian_on_path = service.guardian_executable("/x/__main__.py", which=lambda name: None)
    assert no_guardian_on_path == [sys.executable, "-m", "guardian"]


def test_child_command_is_made_absolute_when_found():
    assert service.resolve_child_command(["sh", "-c", "x"])[0] == shutil.which("sh")
    assert service.resolve_child_command(["./local", "a"]) == ["./local", "a"]
    assert service.resolve_child_command(["no-such-program-xyz"]) == ["no-such-program-xyz"]
    assert service.default_kind("darwin") == "launchd" and service.default_kind("linux") == "systemd"
