"""`guardian status`: the sidecar, the store's health, snapshots and the last repair, at a glance.

Exit codes (for scripts and monitoring): 0 healthy; 1 warnings (stale or no snapshots, store loads
with warnings, sidecar not running); 3 the store would not load; 4 the supervised child is FATAL;
2 usage error.
"""

from __future__ import annotations

import os

from guardian.commands.output import no_store_yet_line, print_json, state_dir_writable
from guardian.runtime.status import human_duration, store_issue_count
from guardian.runtime.status_facts import collect_status, sidecar_status
from guardian.words import count

HELP = "show the sidecar, store health, snapshots and last repair (exit 0 ok, 1 warn, 3 unloadable, 4 FATAL)"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args, ctx) -> int:
    state_dir_writable(ctx.paths, "showing what can be read")
    status = sidecar_status(ctx.paths)
    source = "sidecar" if status is not None else "disk"
    if status is None:
        status = collect_status(ctx.config, ctx.paths)
    status["source"] = source
    if args.json:
        print_json(status)
    else:
        print(render_status(status))
    return status["exit_code"]


def render_status(status: dict) -> str:
    """Short human-readable lines, one per part, ending with the verdict."""
    lines = [_render_sidecar(status["sidecar"]), _render_store(status["store"]),
             _render_snapshots(status["snapshots"])]
    if status["store"].get("quarantined"):
        lines.append(f"quarantine: {count(status['store']['quarantined'], 'item')}")
    if status.get("last_repair"):
        lines.append(_render_repair(status["last_repair"]))
    lines += [_render_replica(r) for r in status.get("replicas") or []]
    verdict = status.get("health", "ok")
    if status.get("warnings"):
        verdict += ": " + "; ".join(status["warnings"])
    lines.append(f"status: {verdict}")
    return "\n".join(lines)


def _render_sidecar(sidecar: dict) -> str:
    if not sidecar.get("running"):
        return f"sidecar: {sidecar.get('detail', 'not running')}"
    text = f"sidecar: running pid {sidecar.get('pid')}, up {human_duration(sidecar.get('uptime_seconds'))}"
    child = sidecar.get("child")
    if child:
        name = os.path.basename(str((child.get("cmd") or ["child"])[0])) if child.get("cmd") else "child"
        state = "FATAL" if child.get("fatal") else child.get("state")
        text += f", child {name} {state} (restarts {child.get('restarts', 0)}"
        if child.get("last_exit") is not None:
            text += f", last exit {child['last_exit']}"
        text += ")"
    return text


def _render_store(store: dict) -> str:
    if not store.get("scanned"):
        return "store: not scanned"
    if store.get("gone"):
        return (f"store: GONE from {store.get('path')} while guarded; the snapshots hold it "
                "(guardian restore --at latest)")
    if store.get("exists") is False:
        return no_store_yet_line(store.get("path"))
    counts = store["collections"]
    parts = [f"{counts[k]} {k}" for k in ("healthy", "warning", "damaged") if counts[k]]
    head = "loadable" if store["loadable"] else f"WOULD NOT LOAD ({store['error']})"
    text = f"store: {head}, {count(counts['total'], 'collection')} ({', '.join(parts) or 'none'})"
    if store_issue_count(store):
        text += f", {count(store_issue_count(store), 'problem')}"
    for item in store.get("unrepaired") or []:
        text += f"\n  unrepaired damage: {item.get('path')} ({item.get('kind')}: {item.get('reason')})"
    return text


def _render_snapshots(snaps: dict) -> str:
    if not snaps["count"]:
        return "snapshots: none yet"
    text = f"snapshots: {snaps['count']}, newest {human_duration(snaps['newest_age_seconds'])} ago"
    text += f" (oldest {snaps['oldest']})"
    if snaps.get("uncaptured_changes"):
        text += (f"; {count(snaps['uncaptured_changes'], 'change')} not yet captured "
                 f"(oldest {human_duration(snaps.get('uncaptured_oldest_seconds'))})")
    elif snaps.get("uncaptured_changes") == 0:
        text += "; every change captured"
    if snaps["stale"]:
        text += f", STALE (interval {human_duration(snaps['interval_seconds'])})"
    return text


def _render_replica(replica: dict) -> str:
    if not replica.get("configured"):
        return f"replica {replica.get('replica')}: misconfigured ({replica.get('error')})"
    text = f"replica {replica['replica']}: "
    if not replica.get("pushed"):
        text += "never pushed"
    else:
        text += (f"{count(replica.get('remote_snapshots', 0), 'snapshot')}, "
                 f"lag {human_duration(replica.get('lag_seconds'))}, "
                 f"{count(replica.get('bytes_sent_total', 0), 'byte')} sent, "
                 f"{count(replica.get('errors_total', 0), 'error')}")
    if replica.get("consecutive_errors"):
        text += f", FAILING: {replica.get('last_error')}"
    return text + ("" if replica.get("encrypted") else " (not encrypted)")


def _render_repair(repair: dict) -> str:
    when = repair.get("time") or repair.get("at") or repair.get("finished_at") or "?"
    what = repair.get("summary") or repair.get("action") or ", ".join(
        f"{k}={v}" for k, v in sorted(repair.items()) if k not in ("time", "at", "finished_at"))
    return f"last repair: {when} {what}".rstrip()
