"""The pure parts of tests/harness/metrics.py: selectors, the CEL rules kwok evaluates, the HPA
formula the integration test asserts with, and quantity parsing."""

from __future__ import annotations

import pytest

from tests.harness import metrics
from tests.harness.metrics import (
    DEFAULT_CPU,
    DEFAULT_MEMORY,
    ScaleTarget,
    cluster_usage_manifest,
    cpu_millicores,
    desired_replicas,
    hpa_manifest,
    memory_bytes,
    parse_selector,
    usage_expressions,
)


def test_selectors_are_equality_terms() -> None:
    assert parse_selector(None) == {}
    assert parse_selector("app=web, tier=fe") == {"app": "web", "tier": "fe"}
    assert parse_selector({"app.kubernetes.io/name": "web"}) == {"app.kubernetes.io/name": "web"}
    for bad in ("app!=web", "app", "app==web", 'a"b=c', "app=we b"):
        with pytest.raises(ValueError):
            parse_selector(bad)


def test_no_rules_is_kwoks_own_default() -> None:
    assert usage_expressions([]) == {"cpu": DEFAULT_CPU, "memory": DEFAULT_MEMORY}


def test_newest_rule_is_the_outermost_condition() -> None:
    rules = [
        {"namespace": "a", "labels": {}, "cpu_millicores": 10},
        {"namespace": "a", "labels": {"app": "web"}, "cpu_millicores": 400, "memory": "64Mi"},
    ]
    cpu = usage_expressions(rules)["cpu"]
    assert cpu.startswith(
        '((pod.metadata.namespace == "a") && ("app" in pod.metadata.labels'
        ' && pod.metadata.labels["app"] == "web")) ? Quantity("400m") : '
    )
    assert cpu.index('Quantity("400m")') < cpu.index('Quantity("10m")') < cpu.index(DEFAULT_CPU)
    memory = usage_expressions(rules)["memory"]
    assert 'Quantity("64Mi")' in memory and memory.endswith(f"({DEFAULT_MEMORY})")


def test_manifest_keeps_the_rules_it_was_built_from() -> None:
    rules = [{"namespace": "a", "labels": {}, "cpu_millicores": 10}]
    manifest = cluster_usage_manifest(rules)
    assert manifest["kind"] == "ClusterResourceUsage"
    assert metrics.PodUsage.rules_of(manifest) == rules
    assert "selector" not in manifest["spec"]  # one object for all pods: no overlap order


@pytest.mark.parametrize(
    ("current", "ratio", "expected"),
    [
        (2, 8.0, 8),  # ceil(16) clamped to max
        (8, 0.5, 4),
        (4, 1.0, 4),
        (4, 1.09, 4),  # within tolerance
        (4, 1.2, 5),
        (4, 0.5, 2),
        (3, 0.1, 2),  # clamped to min
    ],
)
def test_hpa_formula(current: int, ratio: float, expected: int) -> None:
    assert desired_replicas(current, ratio, min_replicas=2, max_replicas=8) == expected


def test_quantities_as_metrics_server_writes_them() -> None:
    assert cpu_millicores("250m") == 250
    assert cpu_millicores("399999870n") == 400
    assert cpu_millicores("2") == 2000
    assert cpu_millicores("0") == 0
    assert memory_bytes("64Mi") == 64 * 2**20
    assert memory_bytes("1048576") == 2**20
    assert memory_bytes("65536Ki") == 64 * 2**20


def test_hpa_manifest_for_any_scale_target() -> None:
    target = ScaleTarget.progressive_service("payment")
    manifest = hpa_manifest("payment", target, min_replicas=2, max_replicas=8, cpu_utilization=50)
    assert manifest["spec"]["scaleTargetRef"] == {
        "apiVersion": "rollwise.dev/v1alpha1",
        "kind": "ProgressiveService",
        "name": "payment",
    }
    assert (target.group, target.version, target.plural) == (
        "rollwise.dev",
        "v1alpha1",
        "progressiveservices",
    )
    assert ScaleTarget.deployment("web").group == "apps"
    with pytest.raises(ValueError):
        _ = ScaleTarget("v1", "ReplicationController", "rc", "replicationcontrollers").group
    value = hpa_manifest("web", target, min_replicas=1, max_replicas=3, cpu_average_millicores=200)[
        "spec"
    ]["metrics"][0]["resource"]["target"]
    assert value == {"type": "AverageValue", "averageValue": "200m"}
    with pytest.raises(ValueError):
        hpa_manifest("web", target, min_replicas=1, max_replicas=3)
