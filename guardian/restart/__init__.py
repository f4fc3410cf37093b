"""When and how soon a child that failed is started again: the restart policy and its backoff.

Pure (no clock, no I/O), below every package that restarts something: the runtime's supervisor
(`guardian run`/`exec`) and the MCP relay (`guardian mcp`) share it.
"""

from guardian.restart.backoff import backoff_delay
from guardian.restart.policy import FailureHistory, FailureVerdict, RestartPolicy, after_failure

__all__ = ["FailureHistory", "FailureVerdict", "RestartPolicy", "after_failure", "backoff_delay"]
