"""Run one repair in this process, slowed between actions so that a test can kill -9 it mid-way.

Usage: python crash_runner.py STORE STATE DELAY [place]

``place``: slow down (and announce) every file linked into place by ``storefs.link_new_at`` instead of
every action, so a kill can land between the files of one action (bringing a hidden collection back).
"""

from __future__ import annotations

import sys
import time

from guardian import logs
from guardian.config import Config
from guardian.repair import apply as apply_mod
from guardian.repair.preflight import preflight
from guardian.local.paths import StatePaths


def main() -> int:
    store, state, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    original = apply_mod.PlanApplier.apply_one

    def slow_apply_one(self, action):
        print("action", flush=True)   # the test picks its kill point from this progress, not the clock
        time.sleep(delay)
        return original(self, action)

    if sys.argv[4:] == ["place"]:
        from guardian.local import storefs

        link = storefs.link_new_at

        def slow_link(*args, **kwargs):
            print("place", flush=True)
            time.sleep(delay)
            return link(*args, **kwargs)

        storefs.link_new_at = slow_link
    else:
        apply_mod.PlanApplier.apply_one = slow_apply_one
    logs.get_logger("guardian.repair")  # structlog is set up on first use: not inside the kill window
    print("started", flush=True)
    result = preflight(Config(store=store, state_dir=state), StatePaths.for_store(store, state))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
