"""Helpers for the live-store tests: a real `guardian run` subprocess, its alerts, its snapshots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from guardian.local.paths import StatePaths
from guardian.snapshots.repository import Repository
from tests.waiting import wait_until

ALERT_SINK = """
import sys
with open(sys.argv[1], "a") as out:
    out.write(sys.stdin.read().strip() + "\\n")
"""


class Guardian:
    """`guardian run` (or `serve`) on ``store`` with its own state dir, alerts written to a file."""

    def __init__(self, store: Path, tmp: Path, command: str = "run", extra_env: dict | None = None, cmd=()):
        self.store, self.tmp = store, tmp
        self.state = tmp / "state"
        self.alerts_file = tmp / "alerts.jsonl"
        (tmp / "alert_sink.py").write_text(ALERT_SINK)
        self.env = {**os.environ, "GUARDIAN_STATE_DIR": str(self.state), "GUARDIAN_CONFIG": str(tmp / "none.toml"),
                    "GUARDIAN_ALERT_COMMAND": f"{sys.executable} {tmp / 'alert_sink.py'} {self.alerts_file}",
                    **(extra_env or {})}
        self.paths = StatePaths.for_store(store, self.state)
        self.log = tmp / f"{command}.log"
        args = [sys.executable, "-m", "guardian", command, "--store", str(store), "--port", "0"]
        if cmd:
            args += ["--", *cmd]
        self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))
        self.port = None

    def wait_ready(self, timeout: float = 90.0) -> "Guardian":
        assert wait_until(lambda: self._port() is not None, timeout=timeout), self.log.read_text()[-3000:]
        assert wait_until(lambda: self.readyz()[0] in (200, 503), timeout=timeout)
        return self

    def _port(self):
        if self.port is None:
            try:
                data = json.loads(self.paths.status_file.read_text())
                self.port = data["sidecar"]["http"]["port"]
            except (OSError, ValueError, KeyError, TypeError):
                for line in self.log.read_text(errors="replace").splitlines():
                    if '"http_listening"' in line:
                        self.port = json.loads(line)["port"]
                    elif line.startswith("guardian: serving ") and " on http://127.0.0.1:" in line:
                        self.port = int(line.rsplit(":", 1)[1].strip())
        return self.port

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self._port()}{path}", timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def readyz(self) -> tuple[int, bytes]:
        return self.get("/readyz")

    def metric(self, name: str) -> float | None:
        status, body = self.get("/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def alerts(self) -> list[dict]:
        if not self.alerts_file.exists():
            return []
        return [json.loads(line) for line in self.alerts_file.read_text().splitlines() if line.strip()]

    def log_events(self, name: str) -> list[dict]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if f'"{name}"' in line:
                try:
                    found.append(json.loads(line))
                except ValueError:
                    pass
        return found

    def newest_rows(self) -> dict:
        repo = Repository(self.paths.snapshots)
        ids = repo.list_ids()
        if not ids:
            return {}
        return {e.path: e for e in repo.read_manifest(ids[-1]).files}

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
