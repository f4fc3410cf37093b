"""sd_notify against a real AF_UNIX datagram socket bound by the test."""

import os
import socket

import pytest

from guardian.runtime.sd_notify import WatchdogPinger, notify_address, sd_notify, watchdog_interval


@pytest.fixture
def listener(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def test_sends_a_datagram_to_the_notify_socket(listener):
    path, sock = listener
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": path}) is True
    assert sock.recv(100) == b"READY=1"


def test_abstract_socket_names_are_supported():
    name = f"guardian-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert sd_notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(100) == b"STOPPING=1"


def test_no_op_without_systemd(tmp_path):
    assert sd_notify("READY=1", {}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": "relative/path"}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody")}) is False
    assert notify_address({"NOTIFY_SOCKET": "@x"}) == "\0x"


def test_watchdog_interval_applies_only_to_its_pid():
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_pinger_pings_at_most_every_half_interval(listener):
    path, sock = listener
    now = [0.0]
    pinger = WatchdogPinger(10.0, send=lambda m: sd_notify(m, {"NOTIFY_SOCKET": path}), clock=lambda: now[0])
    sent = []
    for t in (0.0, 1.0, 4.9, 5.0, 7.0, 10.1):
        now[0] = t
        sent.append(pinger())
    assert sent == [True, False, False, True, False, True]
    assert [sock.recv(100) for _ in range(3)] == [b"WATCHDOG=1"] * 3


def test_pinger_without_watchdog_does_nothing():
    assert WatchdogPinger.from_environment({})() is False
