"""The supervised child: a process started in its own process group, signalled and reaped as a group.

``spawn_process(cmd)`` is the default process factory of the supervisor. Anything with the same
methods (``pid``, ``poll``, ``signal_group``, ``group_alive``, ``reap_group_members``) can stand
in for it, which is how the supervisor's unit tests drive it without real processes.

The child dies with guardian, even on ``kill -9`` of guardian: on Linux it asks the kernel for
SIGKILL when its parent dies (``PR_SET_PDEATHSIG``, set in the child between fork and exec). The
kernel sends it when the *thread* that forked exits, which is why the supervisor spawns from its
one long-lived loop thread. Elsewhere the recorded child (``child_record``) is stopped by the next
``guardian run``.

Limits: a grandchild that leaves the group on purpose (``setsid``/``setpgid``) escapes it; on Linux
``become_subreaper()`` at least makes such orphans guardian's children instead of init's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from typing import Protocol, Sequence

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
SERVICE_MANAGER_VARIABLES = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"})


class ChildProcess(Protocol):
    pid: int

    def poll(self) -> int | None: ...

    def signal_group(self, signum: int) -> bool: ...

    def group_alive(self) -> bool: ...

    def reap_group_members(self) -> int: ...


class ProcessGroup:
    """A ``subprocess.Popen`` child that leads its own process group (pgid == pid)."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.pgid = popen.pid

    def poll(self) -> int | None:
        """The leader's return code once it has exited (negative: killed by that signal)."""
        return self.popen.poll()

    def signal_group(self, signum: int) -> bool:
        """Send ``signum`` to every process of the group; False when the group is gone."""
        try:
            os.killpg(self.pgid, signum)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:  # a member changed user; nothing more we can do to it
            return False

    def group_alive(self) -> bool:
        """True while any process of the group is still running (zombies do not count)."""
        return group_has_live_members(self.pgid)

    def notify_on_exit(self, callback) -> None:
        """Call ``callback()`` from a daemon thread as soon as the leader exits (wakes the loop)."""
        def wait_then_call() -> None:
            self.popen.wait()
            callback()

        threading.Thread(target=wait_then_call, name=f"guardian-wait-{self.pid}", daemon=True).start()

    def reap_group_members(self) -> int:
        """Collect exited group members that are our children (with a subreaper); returns how many.

        Only called once the leader itself has been reaped by ``poll()``, so Popen keeps its code.
        """
        if self.popen.returncode is None:
            return 0
        reaped = 0
        while True:
            try:
                pid, _ = os.waitpid(-self.pgid, os.WNOHANG)
            except ChildProcessError:
                return reaped
            if pid == 0:
                return reaped
            reaped += 1


def spawn_process(cmd: Sequence[str], **popen_kwargs) -> ProcessGroup:
    """Start ``cmd`` as the leader of a new process group; stdio is inherited unless overridden,
    the environment too (without systemd's NOTIFY_SOCKET/WATCHDOG_*, meant for guardian only).

    Raises OSError (e.g. FileNotFoundError) when the command cannot be executed.
    """
    if "env" not in popen_kwargs:
        popen_kwargs["env"] = child_environment(os.environ)
    popen_kwargs.setdefault("preexec_fn", die_with_parent_hook())
    popen = subprocess.Popen(list(cmd), process_group=0, **popen_kwargs)
    return ProcessGroup(popen)


def die_with_parent_hook():
    """A preexec function asking the kernel to SIGKILL the child when guardian dies (Linux), else None.

    libc is loaded here, in the parent: the hook itself runs between fork and exec, where only a
    plain foreign call is safe. If guardian died before the call took effect, the child exits at once.
    """
    libc = _libc()
    if libc is None:
        return None
    parent = os.getpid()
    prctl = libc.prctl

    def die_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return die_with_parent


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def child_environment(environ) -> dict[str, str]:
    """guardian's environment minus systemd's notify/watchdog variables, which are guardian's own."""
    return {key: value for key, value in environ.items() if key not in SERVICE_MANAGER_VARIABLES}


def group_has_live_members(pgid: int) -> bool:
    """Does any non-zombie process belong to group ``pgid``? Uses /proc when present."""
    if os.path.exists("/proc/self/stat"):
        return _proc_group_has_live_members(pgid)
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _proc_group_has_live_members(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def become_subreaper() -> bool:
    """Linux: orphaned descendants are re-parented to this process (so it can reap them).

    Returns False where unsupported. Call once in the long-running sidecar, not in libraries.
    """
    libc = _libc()
    try:
        return libc is not None and libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except AttributeError:
        return False


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
