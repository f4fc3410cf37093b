"""Worker pools: the forkserver behind them stops with the last pool, and starts again for the next."""

from __future__ import annotations

import os

import pytest

from guardian.local import procpool
from guardian.local.procpool import warm_up
from tests.waiting import wait_until


def forkserver_pid() -> int | None:
    from multiprocessing import forkserver

    return getattr(forkserver._forkserver, "_forkserver_pid", None)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def test_the_forkserver_stops_with_the_last_pool_and_starts_again_for_the_next():
    if procpool._LIVE_POOLS[0]:
        pytest.skip("a pool another test left open keeps this process's forkserver")
    first, second = procpool.new_pool(1), procpool.new_pool(1)
    first.submit(warm_up).result(timeout=60)
    second.submit(warm_up).result(timeout=60)
    server = forkserver_pid()
    assert server and alive(server)
    first.shutdown(wait=True)
    assert alive(server), "stopped while another pool still needs it"
    second.shutdown(wait=True)
    second.shutdown(wait=True)   # a second shutdown counts once
    assert wait_until(lambda: not alive(server), timeout=30), "the forkserver outlived its last pool"
    with procpool.new_pool(1) as third:   # a new one for the next pool
        assert third.submit(os.getpid).result(timeout=60) != os.getpid()
        assert forkserver_pid() not in (None, server)
    assert procpool._LIVE_POOLS[0] == 0 and forkserver_pid() is None
