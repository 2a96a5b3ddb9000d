"""The Grafana dashboards chart every metric the operator exports (docs/rollout-semantics.md,
rule 8): the fleet-wide dashboard (dashboards/rollwise.json) and the per-service one
(dashboards/rollwise-service.json), both shipped by the chart's dashboard ConfigMap."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from rollwise.adapters.webhooks import HookMetrics
from rollwise.controller.fencing import LeadershipMetrics
from rollwise.controller.metrics import OperatorMetrics
from tests.e2e.test_packaging_static import CHART, helm_template, the_only
from tests.e2e.test_packaging_static import helm as helm  # the session fixture, by name

DASHBOARDS = CHART / "dashboards"


def exported_metrics() -> set[str]:
    """Every metric family the operator process registers, by its exposed name."""
    registry = CollectorRegistry()
    OperatorMetrics(registry)
    LeadershipMetrics(registry, lambda: True)
    HookMetrics(registry)
    names = set()
    for family in registry.collect():
        kind = family.type
        names.add(family.name + ("_total" if kind == "counter" else ""))
    return names


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def load(name: str) -> dict[str, Any]:
    data = json.loads((DASHBOARDS / name).read_text())
    assert isinstance(data, dict)
    return data


def test_every_exported_metric_is_charted() -> None:
    charted = " ".join(queries(load("rollwise.json")) + queries(load("rollwise-service.json")))
    names = exported_metrics()

    missing = sorted(n for n in names if not re.search(rf"\b{n}(_bucket|_count|_sum)?\b", charted))

    assert len(names) >= 15, names
    assert missing == []


def test_the_service_dashboard_selects_one_service_by_namespace_and_name() -> None:
    dashboard = load("rollwise-service.json")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}

    assert {"datasource", "namespace", "name"} <= set(variables)
    assert "rollwise_service_info" in variables["namespace"]["query"]["query"]
    for expr in queries(dashboard):
        assert 'namespace="$namespace", name="$name"' in expr, expr
        assert re.search(r"\brollwise_service_[a-z_]+", expr), expr
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_the_chart_ships_both_dashboards(helm: Path) -> None:
    rendered = helm_template(helm, "dashboards.enabled=true")
    data = the_only(rendered, "ConfigMap")["data"]

    for name in ("rollwise.json", "rollwise-service.json"):
        assert json.loads(data[name]) == load(name)
