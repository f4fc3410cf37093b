"""The alert hook: a configured command and/or webhook gets a JSON event when something goes wrong.

The command (shell-like words, no shell) reads the event as JSON on stdin and finds it in
$GUARDIAN_EVENT too; the webhook receives it as a JSON POST. Sending never raises: a broken hook
must not take the sidecar down, so failures are logged and reported in the return value.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from guardian.logs import get_logger

CORRUPTION_FOUND = "corruption_found"
REPAIR_DONE = "repair_done"
REPAIR_IMPOSSIBLE = "repair_impossible"
CHILD_FATAL = "child_fatal"
SNAPSHOT_FAILED = "snapshot_failed"
REPLICA_FAILING = "replica_failing"      # a push failed (once per run of failures)
REPLICA_RECOVERED = "replica_recovered"  # the first push that succeeded after failures
STORE_GONE = "store_gone"                # the store folder itself went away while guarded
EVENTS = (CORRUPTION_FOUND, REPAIR_DONE, REPAIR_IMPOSSIBLE, CHILD_FATAL, SNAPSHOT_FAILED, REPLICA_FAILING,
          REPLICA_RECOVERED, STORE_GONE)

DEFAULT_TIMEOUT = 10.0


@dataclass
class AlertOutcome:
    """What happened to one event: the payload, and per target None (not configured), True or an error."""

    event: dict
    command: bool | str | None = None
    webhook: bool | str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return not self.errors and (self.command is True or self.webhook is True)


class Alerter:
    """``Alerter(command, webhook, store=...).send(CHILD_FATAL, exit_code=1)``."""

    def __init__(self, command: str = "", webhook: str = "", store: str = "",
                 timeout: float = DEFAULT_TIMEOUT, host: str | None = None) -> None:
        self.command = command or ""
        self.webhook = webhook or ""
        self.store = str(store or "")
        self.timeout = timeout
        self.host = host or socket.gethostname()
        self.log = get_logger("guardian.runtime.alerts")

    @classmethod
    def from_config(cls, config: Any) -> "Alerter":
        return cls(config.alert_command, config.alert_webhook, store=str(config.store_path))

    @property
    def configured(self) -> bool:
        return bool(self.command or self.webhook)

    def build_event(self, event: str, **fields: Any) -> dict:
        payload = {
            "event": event,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": self.host,
            "store": self.store,
        }
        payload.update(fields)
        return payload

    def send(self, event: str, **fields: Any) -> AlertOutcome:
        """Deliver ``event`` to every configured target; never raises."""
        payload = self.build_event(event, **fields)
        outcome = AlertOutcome(event=payload)
        try:
            body = json.dumps(payload, default=str, sort_keys=True)
        except (TypeError, ValueError) as exc:  # a field that cannot be serialised at all
            body = json.dumps({k: str(v) for k, v in payload.items()})
            outcome.errors.append(f"event not serialisable: {exc}")
        if self.command:
            outcome.command = self.run_command(body)
        if self.webhook:
            outcome.webhook = self.post_webhook(body)
        for target in ("command", "webhook"):
            result = getattr(outcome, target)
            if isinstance(result, str):
                outcome.errors.append(f"{target}: {result}")
        self.log.info("alert", alert_event=event, delivered=outcome.delivered, errors=outcome.errors or None)
        return outcome

    def run_command(self, body: str) -> bool | str:
        """Run the hook command with the event on stdin and in $GUARDIAN_EVENT; True or an error."""
        try:
            argv = shlex.split(self.command)
        except ValueError as exc:
            return self._failed("command", f"cannot parse alert_command: {exc}")
        if not argv:
            return self._failed("command", "alert_command is empty")
        env = dict(os.environ, GUARDIAN_EVENT=body)
        try:
            proc = subprocess.run(argv, input=body.encode("utf-8"), env=env, capture_output=True,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return self._failed("command", f"alert command timed out after {self.timeout:g}s")
        except OSError as exc:
            return self._failed("command", f"cannot run alert command {argv[0]!r}: {exc.strerror or exc}")
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip()[-200:]
            return self._failed("command", f"alert command exited {proc.returncode}: {tail}")
        return True

    def post_webhook(self, body: str) -> bool | str:
        """POST the event as JSON to the webhook; True on a 2xx answer, else an error."""
        if not self.webhook.lower().startswith(("http://", "https://")):
            return self._failed("webhook", f"webhook unreachable: {self.webhook!r} is not an http(s) URL")
        try:
            request = urllib.request.Request(
                self.webhook, data=body.encode("utf-8"), method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "guardian-alerts"},
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(65536)
                return True
        except urllib.error.HTTPError as exc:
            return self._failed("webhook", f"webhook answered HTTP {exc.code}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return self._failed("webhook", f"webhook unreachable: {reason}")

    def _failed(self, target: str, reason: str) -> str:
        self.log.warning("alert_failed", target=target, reason=reason)
        return reason
