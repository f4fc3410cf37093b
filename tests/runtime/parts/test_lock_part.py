"""The lock part: one sidecar per store, and a crashed predecessor's child is stopped first."""

from __future__ import annotations

import subprocess
import sys

import pytest

from guardian.errors import ExitCode, LockError
from guardian.runtime.parts.lock import LockPart
from guardian.runtime.supervisor.child_record import write_record


def test_a_second_sidecar_on_the_store_is_refused_until_the_first_stops(parts, tmp_path):
    first_ctx = parts.make()
    first = LockPart(first_ctx)
    first.start()
    try:
        other_state = parts.make()                     # another state dir makes no difference: the store is keyed
        with pytest.raises(LockError) as exc:
            LockPart(other_state).start()
        assert exc.value.exit_code == ExitCode.LOCKED
    finally:
        first.stop()
    again = LockPart(parts.make())
    again.start()
    again.stop()


def test_a_crashed_predecessors_child_still_running_is_stopped(parts):
    ctx = parts.make(stop_timeout=5.0)
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], process_group=0)
    try:
        write_record(ctx.paths.child_record_file, orphan.pid, ["contextd"])
        part = LockPart(ctx)
        part.start()
        try:
            assert orphan.wait(timeout=60) is not None     # stopped before anything else starts
        finally:
            part.stop()
    finally:
        if orphan.poll() is None:
            orphan.kill()
        orphan.wait()
