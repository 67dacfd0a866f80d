"""The controller's ``/metrics``: the allocations gauge and the naming conventions.

Behaviours: ``mbcas_controller_allocations`` counts the cached PodAllocations by node, status phase
and the reason of their ``Applied`` condition at scrape time (an allocation with no status yet is
``Pending`` with no reason; a combination no allocation has any more disappears); counters end in
``_total``, histograms in ``_seconds``, every family has a help text.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from mbcas.controller.metrics import ControllerMetrics


def allocation(node: str, phase: str | None = None, reason: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"spec": {"nodeName": node, "podName": "p"}}
    if phase is not None:
        conditions = [] if reason is None else [{"type": "Applied", "status": "False", "reason": reason}]
        body["status"] = {"phase": phase, "conditions": [{"type": "Retrying", "reason": "x"}, *conditions]}
    return body


def gauge(metrics: ControllerMetrics) -> dict[tuple[str, str, str], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name == "mbcas_controller_allocations":
            for s in family.samples:
                out[(s.labels["node"], s.labels["phase"], s.labels["reason"])] = s.value
    return out


def test_allocations_are_counted_by_node_phase_and_applied_reason_at_scrape_time() -> None:
    metrics = ControllerMetrics()
    assert gauge(metrics) == {}  # no source yet: the family exists, without samples
    cache = [
        allocation("n1", "Applied", "Applied"),
        allocation("n1", "Applied", "Applied"),
        allocation("n1", "Refused", "Stale"),
        allocation("n2"),
    ]
    metrics.track_allocations(lambda: cache)
    assert gauge(metrics) == {
        ("n1", "Applied", "Applied"): 2,
        ("n1", "Refused", "Stale"): 1,
        ("n2", "Pending", ""): 1,
    }
    cache[2] = allocation("n1", "Applied", "Applied")
    del cache[3]
    assert gauge(metrics) == {("n1", "Applied", "Applied"): 3}


def test_conventions_counters_total_histograms_seconds_help_texts() -> None:
    metrics = ControllerMetrics()
    metrics.resizes.labels(result="applied").inc()
    metrics.refusals.labels(reason="Stale").inc()
    families = list(text_string_to_metric_families(metrics.render().decode()))
    names = {f.name for f in families}
    assert {"mbcas_controller_leader", "mbcas_controller_build_info", "mbcas_controller_allocations"} <= names
    for family in families:
        assert family.name.startswith("mbcas_controller_"), family.name
        assert family.documentation, family.name
        if family.type == "counter":
            assert {s.name for s in family.samples} >= {f"{family.name}_total"}, family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
