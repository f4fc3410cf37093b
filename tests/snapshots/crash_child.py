"""Run one `guardian ARGS...` that SIGKILLs itself at a chosen step of its own progress.

A step is one durable file operation (``os.write``, ``os.fsync``, ``os.replace``, ``os.rename``,
``os.unlink``) — the moments where a crash can leave something half done. With
``GUARDIAN_TEST_KILL_AT_STEP=N`` the process kills itself (SIGKILL, no clean-up) just before its
Nth step, whatever the machine's speed; with ``GUARDIAN_TEST_COUNT_STEPS=FILE`` it writes how many
steps it took to FILE when it exits (a measuring run). Test-only: guardian itself knows nothing of it.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from pathlib import Path

STEPS = ("write", "fsync", "replace", "rename", "unlink")


def count_steps(kill_at: int | None) -> list[int]:
    counter, lock = [0], threading.Lock()

    def wrap(real):
        def step(*args, **kwargs):
            with lock:
                counter[0] += 1
                if kill_at is not None and counter[0] >= kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return step

    for name in STEPS:
        setattr(os, name, wrap(getattr(os, name)))
    return counter


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    kill_at = os.environ.get("GUARDIAN_TEST_KILL_AT_STEP")
    counter = count_steps(int(kill_at) if kill_at else None)
    report = os.environ.get("GUARDIAN_TEST_COUNT_STEPS")
    if report:
        atexit.register(lambda: Path(report).write_text(str(counter[0])))
    from guardian.cli import main as guardian_main

    return guardian_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
