"""Supervision of the child command (contextd): process group, restarts with backoff, FATAL, signals."""

from guardian.restart.backoff import backoff_delay
from guardian.restart.policy import FailureHistory, RestartPolicy, after_failure, describe_exit
from guardian.runtime.supervisor.supervisor import Supervisor
from guardian.runtime.supervisor.process import ProcessGroup, become_subreaper, spawn_process
from guardian.runtime.supervisor.signals import install_signal_handlers
from guardian.runtime.supervisor.states import (
    BACKOFF, FATAL, PAUSED, RUNNING, STARTING, STATES, STOPPED, STOPPING, StartCheck,
)

__all__ = [
    "BACKOFF", "FATAL", "PAUSED", "RUNNING", "STARTING", "STATES", "STOPPED", "STOPPING",
    "FailureHistory", "StartCheck", "ProcessGroup", "RestartPolicy", "Supervisor",
    "after_failure", "backoff_delay", "become_subreaper", "describe_exit", "install_signal_handlers",
    "spawn_process",
]
