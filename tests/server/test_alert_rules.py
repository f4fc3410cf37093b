"""prometheus/guardian-alerts.yml: valid, its unit tests pass under the real promtool, every metric it
reads is one guardian exports, and its names stay apart from contextd's own rules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.server.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "guardian-alerts.yml"
RULE_TESTS = ROOT / "prometheus" / "guardian-alerts.test.yml"


def promtool() -> str:
    """promtool beside this Python (.ci/run extracts it from Debian's prometheus package) or on PATH."""
    here = Path(sys.executable).parent / "promtool"
    found = str(here) if os.access(here, os.X_OK) else shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not here (.ci/run extracts it from Debian's prometheus package)")
    return found


def test_the_rules_pass_their_promtool_unit_tests():
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            timeout=120, cwd=RULES.parent)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_metric_the_rules_read_is_exported_and_the_names_are_guardians():
    text = RULES.read_text()
    metrics = Metrics()
    metrics.set_unrepaired(0)
    metrics.set_child("FATAL", 0)
    metrics.replica_failed("file:///x")
    metrics.watch_replica("file:///x", lambda: 0.0)
    exported = set(re.findall(r"^(guardian_[a-z_]+)", metrics.render().decode(), re.M))
    read = set(re.findall(r"\b(guardian_[a-z_]+)", text))
    assert read and read <= exported, read - exported
    assert re.findall(r"^  - name: (\S+)", text, re.M) == ["guardian"]
    alerts = re.findall(r"alert: (\S+)", text)
    assert alerts and all(a.startswith("Guardian") for a in alerts)
    assert "contextd_vectorstore" not in text.replace("`contextd_vectorstore` group", "")
    tested = set(re.findall(r"alertname: (\S+)", RULE_TESTS.read_text()))
    assert tested == set(alerts), set(alerts) - tested
