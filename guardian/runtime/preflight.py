"""Pre-flight before any launch (`run`, `exec`, every child restart): check, repair, alert, log.

`exec` and `mcp` call this directly; in `run` the pre-flight part (``parts/preflight.py``) wraps it
and keeps the runtime context current. Not merged into the part: importing the part costs `exec`
~30 ms more (prometheus_client via the context; measured: import the part after this module).
"""

from __future__ import annotations

from guardian.repair.preflight import alert_events, preflight
from guardian.runtime import alerts


def preflight_and_alert(config, paths, log, alerter: alerts.Alerter | None = None, keep_listings: bool = False,
                        keep_held: bool = False):
    """Run the repair pre-flight; log what happened and send the alert events it implies
    (``keep_listings``, ``keep_held``: see ``repair.preflight.preflight``)."""
    alerter = alerter or alerts.Alerter.from_config(config)
    result = preflight(config, paths, keep_listings=keep_listings, keep_held=keep_held)
    for event, fields in alert_events(result):
        alerter.send(event, **fields)
    data = result.to_dict()
    if result.only_held:
        log.warning("store_being_written", paths=result.held, loadable=data.get("loadable_after"),
                    note="a process holds these files open for writing; they are judged once it lets go")
    elif not data.get("loadable_after", True):
        log.critical("store_unloadable_after_repair", error=data.get("error_after", ""),
                     hint="run `guardian check` and `guardian restore --at <time>`")
    elif data.get("actions"):
        log.warning("store_repaired", actions=len(data["actions"]))
    else:
        log.info("preflight_ok")
    return result
