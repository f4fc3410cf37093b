"""Service files that start `guardian run` at login: a systemd user unit or a launchd agent.

Rendering and planning are pure (paths, environment and the guardian executable are arguments);
``guardian install`` does the writing. The checked-in examples (systemd/guardian.service,
launchd/io.guardian.sidecar.plist) are these same renderers' output for placeholder paths.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from guardian.errors import UsageError

SYSTEMD = "systemd"
LAUNCHD = "launchd"
KINDS = (SYSTEMD, LAUNCHD)
UNIT_NAME = "guardian.service"
LAUNCHD_LABEL = "io.guardian.sidecar"
WATCHDOG_SEC = 60
RESTART_SEC = 5
START_TIMEOUT_SEC = 300  # the pre-flight check + repair of a large store happens before READY=1
MIN_STOP_TIMEOUT_SEC = 30
STOP_MARGIN_SEC = 15
DESCRIPTION = "guardian: keeps contextd's chromem-go vector store loadable, snapshotted and searchable"


@dataclass(frozen=True)
class ServiceFile:
    kind: str
    path: Path
    content: bytes
    enable_commands: tuple[str, ...]


def default_kind(platform: str = sys.platform) -> str:
    return LAUNCHD if platform == "darwin" else SYSTEMD


def service_stop_timeout(stop_timeout: float) -> int:
    """The service manager's stop timeout: above guardian's own (which SIGKILLs the child in time)."""
    return int(max(MIN_STOP_TIMEOUT_SEC, stop_timeout + STOP_MARGIN_SEC) + 0.999)


def systemd_quote(arg: str, expands_variables: bool = True) -> str:
    """One ExecStart word: specifiers (%) and variables ($) doubled, quoted when needed."""
    if "\n" in arg or "\r" in arg:
        raise UsageError(f"a service command argument cannot contain a newline: {arg!r}")
    escaped = arg.replace("%", "%%")
    if expands_variables:
        escaped = escaped.replace("$", "$$")
    if escaped and not any(c in escaped for c in " \t\"'\\;"):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_command_line(argv: Sequence[str]) -> str:
    return " ".join(systemd_quote(arg) for arg in argv)


def render_systemd_unit(exec_start: str, stop_timeout: float = 10.0,
                        environment: Mapping[str, str] | None = None) -> str:
    """A systemd user unit; ``exec_start`` is the already-quoted ExecStart command line."""
    env_lines = [f"Environment={systemd_quote(f'{key}={value}', expands_variables=False)}"
                 for key, value in {"PYTHONUNBUFFERED": "1", **(environment or {})}.items()]
    lines = [
        "[Unit]",
        f"Description={DESCRIPTION}",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        f"WatchdogSec={WATCHDOG_SEC}",
        f"TimeoutStartSec={START_TIMEOUT_SEC}",
        f"TimeoutStopSec={service_stop_timeout(stop_timeout)}",
        "KillMode=mixed",
        *env_lines,
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def render_launchd_plist(argv: Sequence[str], log_dir: str, stop_timeout: float = 10.0,
                         environment: Mapping[str, str] | None = None, label: str = LAUNCHD_LABEL) -> bytes:
    """A launchd agent plist (XML) that keeps `guardian run` alive and logs under ``log_dir``."""
    plist = {
        "Label": label,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Background",
        "ThrottleInterval": RESTART_SEC * 2,
        "ExitTimeOut": service_stop_timeout(stop_timeout),
        "StandardOutPath": f"{log_dir}/guardian.out.log",
        "StandardErrorPath": f"{log_dir}/guardian.err.log",
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1", **(environment or {})},
    }
    return plistlib.dumps(plist, fmt=plistlib.FMT_XML, sort_keys=False)


def systemd_unit_path(home: Path, environ: Mapping[str, str]) -> Path:
    config_home = environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config_home) / "systemd" / "user" / UNIT_NAME


def launchd_plist_path(home: Path) -> Path:
    return home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def launchd_log_dir(home: Path) -> Path:
    return home / "Library" / "Logs" / "guardian"


def enable_commands(kind: str, path: Path, uid: int) -> tuple[str, ...]:
    if kind == SYSTEMD:
        return ("systemctl --user daemon-reload && systemctl --user enable --now guardian",)
    return (f"launchctl bootout gui/{uid}/{LAUNCHD_LABEL} 2>/dev/null; "
            f"launchctl bootstrap gui/{uid} {path}",)


def plan_service(kind: str, argv: Sequence[str], home: Path, environ: Mapping[str, str], uid: int,
                 stop_timeout: float = 10.0) -> ServiceFile:
    """Which file to write where, with what content, and the commands that enable it. Pure."""
    # Service managers start with a minimal PATH (systemd's user manager has no ~/go/bin or
    # ~/.local/bin): the unit carries the PATH of the install, as the plist does.
    environment = {"PATH": environ["PATH"]} if environ.get("PATH") else {}
    if kind == SYSTEMD:
        path = systemd_unit_path(home, environ)
        content = render_systemd_unit(systemd_command_line(argv), stop_timeout, environment).encode("utf-8")
    elif kind == LAUNCHD:
        path = launchd_plist_path(home)
        content = render_launchd_plist(argv, str(launchd_log_dir(home)), stop_timeout, environment)
    else:
        raise UsageError(f"unknown service kind {kind!r}", "use --systemd or --launchd")
    return ServiceFile(kind=kind, path=path, content=content, enable_commands=enable_commands(kind, path, uid))


def guardian_executable(argv0: str | None = None, which=shutil.which) -> list[str]:
    """How a service manager should start this guardian: its script, else `guardian` on PATH,
    else this interpreter with ``-m guardian``. Always absolute."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if argv0 and os.path.basename(argv0) == "guardian" and os.path.isfile(argv0):
        return [os.path.abspath(argv0)]
    found = which("guardian")
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", "guardian"]


def resolve_child_command(cmd: Sequence[str], which=shutil.which) -> list[str]:
    """The child command with its program made absolute when found on this PATH (service
    managers start with a minimal PATH)."""
    cmd = list(cmd)
    if cmd and os.sep not in cmd[0]:
        found = which(cmd[0])
        if found:
            cmd[0] = os.path.abspath(found)
    return cmd


EXAMPLE_SYSTEMD_EXEC_START = "%h/.local/bin/guardian run"
EXAMPLE_MAC_HOME = "/Users/you"
EXAMPLE_MAC_PATH = "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def example_files() -> dict[str, bytes]:
    """The checked-in examples (repo-relative path -> content); `guardian install` writes real ones."""
    mac_home = Path(EXAMPLE_MAC_HOME)
    return {
        "systemd/guardian.service": render_systemd_unit(EXAMPLE_SYSTEMD_EXEC_START).encode("utf-8"),
        f"launchd/{LAUNCHD_LABEL}.plist": render_launchd_plist(
            [f"{EXAMPLE_MAC_HOME}/.local/bin/guardian", "run"], str(launchd_log_dir(mac_home)),
            environment={"PATH": EXAMPLE_MAC_PATH}),
    }
