"""Support for the dashboard and alert tests: render the chart's monitoring add-ons, pull every
PromQL expression out of them, parse each with a real PromQL parser and list the series it reads.

PromQL is parsed by ``promql-parser`` (PyPI; the Rust parser of GreptimeDB with Python bindings,
used offline): it rejects syntax errors, unknown functions and type errors (``rate`` of an instant
vector ...), as ``promtool check rules`` does for expressions. Grafana's macros and template
variables are replaced by values of the right type before parsing, and a variable query
``label_values(<selector>, <label>)`` is checked through its selector.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from mbcas.local import helm

__all__ = [
    "MONITORING_VALUES",
    "dashboard_queries",
    "exported_series",
    "render_monitoring",
    "rule_expressions",
    "series_names",
]

MONITORING_VALUES = helm.MONITORING_VALUES

# Grafana macros of a duration type, and the value used when parsing.
_DURATION_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", re.S)


def render_monitoring(paths: helm.Paths, *set_values: str) -> list[dict[str, Any]]:
    """The chart's documents with the monitoring add-ons enabled (plus ``set_values``)."""
    text = helm.template(set_values=[*MONITORING_VALUES, *set_values], include_crds=False, paths=paths)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _grafana_to_promql(expr: str) -> str:
    for macro, value in _DURATION_MACROS.items():
        expr = expr.replace(macro, value)
    # Any other variable stands inside a label matcher's string (e.g. node=~"$node").
    return _VARIABLE.sub("x", expr)


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of a dashboard."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels") or [])

    for panel in panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            yield f"panel {panel['title']!r} {target['refId']}", _grafana_to_promql(target["expr"])
    for var in (dashboard.get("templating") or {}).get("list") or []:
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = _LABEL_VALUES.match(query)
        assert match, f"variable {var['name']}: only label_values(<selector>, <label>) is used: {query!r}"
        yield f"variable {var['name']}", _grafana_to_promql(match.group(1))


def rule_expressions(rule_doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(alert or record name, PromQL) for every rule of a PrometheusRule."""
    for group in rule_doc["spec"]["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def series_names(expr: str) -> set[str]:
    """Every metric name the expression selects (it must parse as PromQL).

    Raises:
        ValueError: the expression does not parse or type-check, or selects series by labels alone.
    """
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next((m.value for m in node.matchers.matchers if m.name == "__name__"), None)
            if not name:
                raise ValueError(f"a selector without a metric name in {expr!r}")
            names.add(name)
            return
        for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, str | int | float):
                walk(child)
        for arg in getattr(node, "args", None) or []:
            walk(arg)

    walk(promql_parser.parse(expr))
    return names


def exported_series(exposition: str) -> set[str]:
    """The series names an exporter's ``/metrics`` declares: every sample name present, and for
    each family (``# TYPE``) the names it yields once it has samples (a labelled counter with no
    child yet shows only its TYPE line)."""
    from prometheus_client.parser import text_string_to_metric_families

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created", ""),
        "gauge": ("",),
        "info": ("_info",),
        "stateset": ("",),
        "unknown": ("",),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(s.name for s in family.samples)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def load_dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
