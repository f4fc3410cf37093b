"""A newcomer's first steps, replayed: README's first command in the background, then every README
example (guardian commands and curl lines) against the example store, each with the exit code
README's table gives, and never an internal error.

README's first command runs as written, in a fresh copy of the repository (its tracked and
untracked files, as a clone would have them, plus uncommitted work: no .venv, no build output):
`python3 -m venv .venv && .venv/bin/pip install … && .venv/bin/guardian run …`. The copy and its
venv are made once per module; each test runs the whole first command again (the second install
finds everything in place). Only pip's download cache is shared with the machine (a newcomer's
pip has one too). Fixed paths of the README (/tmp/…, port 8765, HOME) are moved into the test's
folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.errors import ExitCode
from tests.waiting import http_status, wait_for

pytestmark = pytest.mark.slow   # both tests on one worker (tests/conftest.py ONE_WORKER): one fresh copy and install

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEMO_STATE = "/tmp/guardian-demo"
SKIP = ("systemctl ", "python3 -m venv", ".venv/bin/python -m pytest", ".venv/bin/pip",
        ".venv/bin/python bench/",   # benchmarks (bench/ is not in the scratch copy), not examples
        ".venv/bin/guardian mcp ",   # an MCP server on stdio: without contextd it serves its fallback forever
        # these need a replica target (a bucket, a mounted folder):
        ".venv/bin/guardian replicate", ".venv/bin/guardian key export", ".venv/bin/guardian snapshots --from",
        ".venv/bin/guardian restore --from", ".venv/bin/guardian verify --from")
# README's exit-code table, applied to what each example does on the running demo
EXPECTED = (
    (r"guardian exec -- contextd", ExitCode.NOT_RUNNABLE),   # contextd is not installed here
    (r"guardian run -- contextd", ExitCode.LOCKED),          # the demo sidecar already guards the store
    (r"guardian install .*-- contextd", ExitCode.NOT_RUNNABLE),  # a unit whose child cannot be found is refused
    (r"guardian install --launchd", ExitCode.USAGE),         # the demo's state dir is in /tmp: refused, as README says
)


def sh_blocks(text: str) -> list[tuple[str, str]]:
    """(heading, command) for every command line of every ```sh block (continuations joined)."""
    found, heading = [], ""
    for match in re.finditer(r"^(#+ [^\n]*)$|^```sh\n(.*?)^```", text, re.M | re.S):
        if match.group(1):
            heading = match.group(1)
            continue
        for line in match.group(2).replace("\\\n", " ").splitlines():
            line = line.strip()
            if line:
                found.append((heading, line))
    return found


def inline_commands(text: str) -> list[str]:
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return [m for m in re.findall(r"`([^`\n]+)`", prose) if m.startswith((".venv/bin/guardian ", "curl "))
            and ("--store" in m or m.startswith("curl"))]


def strip_comment(line: str) -> str:
    return re.sub(r"\s+#\s.*$", "", line)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def normalized(text: str) -> list[str]:
    """Status lines with what varies (the store's path, pids, times, durations, counts) replaced by placeholders."""
    text = re.sub(r"(?m)^store path: \S+", "store path: PATH", text)   # where the clone is
    text = re.sub(r"key=\S+", "key=KEY", text)                        # the console's secret
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "TIME", text)
    text = re.sub(r"\b\d+[hmsd]( \d+[hms])*\b", "DURATION", text)
    return [re.sub(r"\d+", "N", line) for line in text.strip().splitlines()]


def repository_files(root: Path) -> list[str]:
    """What a fresh clone holds (tracked and untracked, .gitignore'd left out); without git, every
    file but build output."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
                            capture_output=True)
    if listed.returncode == 0 and listed.stdout:
        return [name for name in os.fsdecode(listed.stdout).split("\0") if name and (root / name).is_file()]
    skip = {".venv", ".git", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis"}
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.suffix == ".so"
            and not skip.intersection(p.relative_to(root).parts) and ".egg-info" not in str(p)]


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("newcomer") / "clone"
    for name in repository_files(ROOT):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, work / name)
    assert not (work / ".venv").exists() and (work / "examples" / "store").is_dir()
    return work


@pytest.fixture
def demo(tmp_path, fresh_copy):
    """README's first command, running in the background in a fresh copy of the repository."""
    work = fresh_copy
    state, port, home = tmp_path / "demo-state", free_port(), tmp_path / "home"
    home.mkdir()

    def adapt(command: str) -> str:
        command = command.replace("8765", str(port))
        return re.sub(r"/tmp/[\w.-]+", lambda m: str(state) if m.group(0) == DEMO_STATE
                      else str(tmp_path / m.group(0)[5:]), command)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUARDIAN_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(sys.prefix))   # not the project's venv
    env.setdefault("PIP_CACHE_DIR", os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                                 "pip"))   # the machine's download cache: a newcomer has one too
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"),
               GUARDIAN_CONFIG=str(tmp_path / "no-config.toml"))
    first = sh_blocks(README.read_text())[0][1]
    assert first.startswith("python3 -m venv .venv") and ".venv/bin/guardian run" in first
    log = open(tmp_path / "sidecar.log", "wb")
    proc = subprocess.Popen(["bash", "-c", adapt(first)], cwd=work, env=env, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        def ready() -> bool:
            return http_status(f"http://127.0.0.1:{port}/readyz") == 200
        # the first run installs everything (about 1.5 min with a warm pip cache on a quiet 2-core box)
        wait_for(lambda: ready() or proc.poll() is not None, timeout=1200, what="the install and the demo sidecar")
        assert proc.poll() is None, (tmp_path / "sidecar.log").read_text()[-3000:]
        assert (work / ".venv" / "bin" / "guardian").is_file() and not (work / ".venv").is_symlink()
        snapshots = state / "stores"
        wait_for(lambda: list(snapshots.glob("*/snapshots/manifests/*")) or list(snapshots.glob("*/snapshots/*/*")),
                 timeout=120, what="the demo's first snapshot")
        yield work, env, adapt
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)   # bash ran `… && guardian run`: Ctrl-C as in a terminal
        assert proc.wait(timeout=120) == 0, (tmp_path / "sidecar.log").read_text()[-2000:]


def run(command: str, work: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)


def expected_code(command: str) -> int:
    for pattern, code in EXPECTED:
        if re.search(pattern, command):
            return code
    return ExitCode.OK


@pytest.mark.timeout(2400)   # a fresh install, then ~30 processes in a row: a deadline for a hang, not a speed goal
def test_every_readme_example_runs_on_the_example_store(demo):
    work, env, adapt = demo
    text = README.read_text()
    examples = [line for _, line in sh_blocks(text)[1:] if not line.startswith(SKIP)]
    inline = inline_commands(text)
    assert any("guardian status" in c for c in inline) and any(c.startswith("curl") for c in inline)
    examples += inline
    assert len(examples) >= 25
    ran = []
    for raw in examples:
        command = adapt(strip_comment(raw))
        assignment = re.fullmatch(r"export ((?:\w+=\S+\s*)+)", command)
        if assignment:
            env = {**env, **dict(pair.split("=", 1) for pair in assignment.group(1).split())}
            continue
        done = run(command, work, env)
        output = done.stdout + done.stderr
        assert "internal error" not in output and "Traceback" not in output, (raw, output[-1500:])
        assert done.returncode == expected_code(command), (raw, done.returncode, output[-1500:])
        if command.startswith("curl") and "-X POST" in command:
            assert "results" in json.loads(done.stdout), (raw, done.stdout[:500])
        ran.append(raw)
    assert any("restore --at latest --target" in c for c in ran) and any(c.startswith("curl") for c in ran)


@pytest.mark.timeout(1800)
def test_status_sample_matches_the_real_output(demo):
    work, env, adapt = demo
    text = README.read_text()
    sample = re.search(r"## How to read `status`.*?```\n(.*?)```", text, re.S).group(1)
    [command] = [c for c in inline_commands(text) if "guardian status" in c]
    done = run(adapt(command), work, env)
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert normalized(done.stdout) == normalized(sample)
