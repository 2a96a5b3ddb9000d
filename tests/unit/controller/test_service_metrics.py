"""Per-service metrics (docs/rollout-semantics.md, rule 8): labelled by namespace and name,
one info series per service whatever its history, every series gone with the service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from rollwise.api.service_status import Phase, RevisionStatus, ServiceStatus
from rollwise.controller.metrics import OperatorMetrics
from rollwise.controller.service_memory import ServiceMemories

KEY = ("shop", "payment")


def status(phase: Phase, weight: int = 0, canary: str | None = "2.0.0") -> ServiceStatus:
    return ServiceStatus(
        phase=phase,
        canary_weight=weight,
        stable=RevisionStatus(revision="a", version="1.0.0"),
        canary=RevisionStatus(revision="b", version=canary) if canary else None,
    )


def series(registry: CollectorRegistry, prefix: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith(prefix) and not s.name.endswith("_created")
    ]


def test_info_weight_verdicts_and_rollbacks_are_labelled_by_namespace_and_name() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)

    metrics.services.record(KEY, status(Phase.PROGRESSING, 25), [("error-rate", "Passed")], None)
    metrics.services.record(
        KEY, status(Phase.ROLLED_BACK), [("error-rate", "Failed")], "GateFailed"
    )

    value = registry.get_sample_value
    info = {"namespace": "shop", "name": "payment", "stable": "1.0.0", "canary": "2.0.0"}
    assert value("rollwise_service_info", {**info, "phase": "RolledBack"}) == 1
    assert value("rollwise_service_info", {**info, "phase": "Progressing"}) is None
    assert value("rollwise_service_canary_weight", {"namespace": "shop", "name": "payment"}) == 0
    verdict = {"namespace": "shop", "name": "payment", "gate": "error-rate"}
    assert value("rollwise_service_gate_verdicts_total", {**verdict, "verdict": "Failed"}) == 1
    rollback = {"namespace": "shop", "name": "payment", "reason": "GateFailed"}
    assert value("rollwise_service_rollbacks_total", rollback) == 1


def test_one_info_series_per_service_whatever_it_went_through() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)

    for i in range(200):
        phase = list(Phase)[i % len(Phase)]
        metrics.services.record(KEY, status(phase, i % 100, canary=f"2.0.{i}"), [], None)

    assert len(series(registry, "rollwise_service_info")) == 1
    assert len(series(registry, "rollwise_service_canary_weight")) == 1


def test_every_series_of_a_deleted_service_goes_and_others_stay() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    memories = ServiceMemories(metrics=metrics)
    other = ("shop", "cart")
    for key in (KEY, other):
        metrics.services.record(key, status(Phase.PROGRESSING, 10), [("g", "Passed")], None)
        metrics.services.record(key, status(Phase.ROLLED_BACK), [("g", "Failed")], "GateFailed")

    memories.forget(KEY)

    left = series(registry, "rollwise_service_")
    assert left and all(labels["name"] == "cart" for _, labels, _ in left)
