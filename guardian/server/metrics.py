"""Prometheus metrics on a dedicated registry (never the global one), all named ``guardian_*``.

The sidecar feeds the store/snapshot/repair/child facts through :class:`Metrics`; the HTTP
server observes query latency itself and refreshes the index gauges on each scrape.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
COLLECTION_STATES = ("healthy", "warning", "damaged")
CHILD_STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN")


class Metrics:
    """The sidecar's metrics. Methods are cheap and thread-safe (prometheus_client locks)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.collections = Gauge("guardian_collections", "Collections in the store by health",
                                 ["status"], registry=r)
        self.documents = Gauge("guardian_documents", "Documents in the store (as chromem would count them)",
                               registry=r)
        self.store_loadable = Gauge("guardian_store_loadable", "1 when chromem would load the store", registry=r)
        self.hidden_documents = Gauge("guardian_hidden_documents",
                                      "Document files under the store root that chromem does not load (sub-folders "
                                      "such as contextd's .quarantine, the other compression format, a dropped "
                                      "duplicate folder)", registry=r)
        self.store_problems = Gauge("guardian_store_problems", "Problems found by the last scan",
                                    ["severity"], registry=r)
        self.indexed = Gauge("guardian_index_documents", "Documents in the search index", registry=r)
        self.index_collections = Gauge("guardian_index_collections", "Collections in the search index",
                                       ["status"], registry=r)
        self.index_problems = Gauge("guardian_index_problems", "Document files the index could not use",
                                    registry=r)
        self.snapshots = Gauge("guardian_snapshots", "Snapshots kept", registry=r)
        self.newest_snapshot = Gauge("guardian_newest_snapshot_timestamp_seconds",
                                     "Unix time of the newest snapshot (0: none)", registry=r)
        self.repairs = Counter("guardian_repairs", "Repairs applied to the store", registry=r)
        self.damage_unrepaired = Gauge("guardian_damage_unrepaired",
                                       "Settled damaged paths still in the store (the live repair could not fix "
                                       "them; `guardian check` says why)", registry=r)
        self.child_restarts = Gauge("guardian_child_restarts", "Restarts of the supervised child", registry=r)
        self.child_state = Gauge("guardian_child_state", "1 for the supervised child's current state",
                                 ["state"], registry=r)
        self.query_seconds = Histogram("guardian_query_seconds", "Query latency (search only)",
                                       buckets=QUERY_BUCKETS, registry=r)
        self.query_errors = Counter("guardian_query_errors", "Rejected queries by HTTP status",
                                    ["status"], registry=r)
        self.replica_lag = Gauge("guardian_replica_lag_seconds",
                                 "Age of the oldest local snapshot the replica lacks (0: up to date)",
                                 ["replica"], registry=r)
        self.replica_bytes = Counter("guardian_replica_bytes_sent", "Bytes sent to the replica",
                                     ["replica"], registry=r)
        self.replica_errors = Counter("guardian_replica_errors", "Failed pushes to the replica",
                                      ["replica"], registry=r)
        self.replica_up = Gauge("guardian_replica_up", "1 when the last push to the replica succeeded",
                                ["replica"], registry=r)
        self.replica_last_success = Gauge("guardian_replica_last_success_timestamp_seconds",
                                          "Unix time of the last successful push (0: none)", ["replica"], registry=r)

    def set_store(self, scan: Any) -> None:
        """From a StoreScan: collections by status, documents, loadable, problems by severity."""
        collections = list(getattr(scan, "collections", []) or [])
        for state in COLLECTION_STATES:
            self.collections.labels(state).set(sum(1 for c in collections if getattr(c, "status", "") == state))
        self.documents.set(sum(int(getattr(c, "documents", 0) or 0) for c in collections))
        self.store_loadable.set(1 if getattr(scan, "loadable", False) else 0)
        problems = list(getattr(scan, "problems", []) or [])
        self.hidden_documents.set(sum(int(getattr(p, "documents", 0) or 0) for p in problems))
        for severity in ("fatal", "warning"):
            self.store_problems.labels(severity).set(
                sum(1 for p in problems if getattr(p, "severity", "") == severity))

    def set_index(self, index: Any) -> None:
        """From a StoreIndex: indexed documents, collections healthy/damaged, problems."""
        collections = list(index.collections().values())
        self.indexed.set(sum(c.indexed for c in collections))
        damaged = sum(1 for c in collections if c.damaged)
        self.index_collections.labels("damaged").set(damaged)
        self.index_collections.labels("healthy").set(len(collections) - damaged)
        self.index_problems.set(sum(len(c.problems) for c in collections))

    def set_snapshots(self, count: int, newest_ts: float | None) -> None:
        self.snapshots.set(count)
        self.newest_snapshot.set(newest_ts or 0)

    def set_unrepaired(self, count: int) -> None:
        self.damage_unrepaired.set(count)

    def inc_repairs(self, n: int = 1) -> None:
        if n > 0:
            self.repairs.inc(n)

    def set_child(self, state: str, restarts: int) -> None:
        current = (state or "UNKNOWN").upper()
        for known in set(CHILD_STATES) | {current}:
            self.child_state.labels(known).set(1 if known == current else 0)
        self.child_restarts.set(restarts)

    def watch_replica(self, replica: str, lag) -> None:
        """``lag()`` is read at every scrape, so the gauge grows while the replica is behind."""
        self.replica_lag.labels(replica).set_function(lag)
        self.replica_bytes.labels(replica).inc(0)
        self.replica_errors.labels(replica).inc(0)

    def replica_pushed(self, replica: str, bytes_sent: int, when: float) -> None:
        self.replica_bytes.labels(replica).inc(bytes_sent)
        self.replica_up.labels(replica).set(1)
        self.replica_last_success.labels(replica).set(when)

    def replica_failed(self, replica: str, bytes_sent: int = 0) -> None:
        self.replica_bytes.labels(replica).inc(bytes_sent)
        self.replica_errors.labels(replica).inc()
        self.replica_up.labels(replica).set(0)

    def observe_query(self, seconds: float) -> None:
        self.query_seconds.observe(seconds)

    def count_error(self, status: int) -> None:
        self.query_errors.labels(str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
