"""Metrics: a dedicated registry fed by the sidecar's facts, rendered in Prometheus text format."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from guardian.index.store_index import StoreIndex
from guardian.server.metrics import Metrics


def samples(metrics: Metrics) -> dict:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_sidecar_facts_become_metrics(plain_store):
    metrics = Metrics()
    scan = SimpleNamespace(
        loadable=False,
        collections=[SimpleNamespace(status="healthy", documents=40), SimpleNamespace(status="damaged", documents=8)],
        problems=[SimpleNamespace(severity="fatal"), SimpleNamespace(severity="warning"),
                  SimpleNamespace(severity="warning")])
    metrics.set_store(scan)
    metrics.set_snapshots(3, 1700000000.0)
    metrics.inc_repairs(2)
    metrics.inc_repairs(0)
    metrics.set_child("running", 4)
    metrics.set_child("FATAL", 5)
    metrics.observe_query(0.002)
    metrics.count_error(404)
    metrics.set_index(StoreIndex(plain_store).build())
    got = samples(metrics)
    assert got[("guardian_collections", (("status", "healthy"),))] == 1
    assert got[("guardian_collections", (("status", "damaged"),))] == 1
    assert got[("guardian_documents", ())] == 48
    assert got[("guardian_store_loadable", ())] == 0
    assert got[("guardian_store_problems", (("severity", "warning"),))] == 2
    assert got[("guardian_snapshots", ())] == 3
    assert got[("guardian_newest_snapshot_timestamp_seconds", ())] == 1700000000.0
    assert got[("guardian_repairs_total", ())] == 2
    assert got[("guardian_child_restarts", ())] == 5
    assert got[("guardian_child_state", (("state", "FATAL"),))] == 1
    assert got[("guardian_child_state", (("state", "RUNNING"),))] == 0
    assert got[("guardian_query_seconds_count", ())] == 1
    assert got[("guardian_query_seconds_bucket", (("le", "0.0025"),))] == 1
    assert got[("guardian_query_errors_total", (("status", "404"),))] == 1
    assert got[("guardian_index_documents", ())] == 90
    assert got[("guardian_index_collections", (("status", "healthy"),))] == 5


def test_registries_are_separate_from_the_global_one():
    first, second = Metrics(), Metrics()
    first.inc_repairs(1)
    assert samples(second)[("guardian_repairs_total", ())] == 0
    assert REGISTRY.get_sample_value("guardian_repairs_total") is None
