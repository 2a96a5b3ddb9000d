"""The operator's own Prometheus metrics, served on --metrics-port."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as _start_http_server

from rollwise.api.service_status import Phase


class OperatorMetrics:
    """Counters and gauges of the reconcile loop; one instance per process (or per test)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.rollouts = Gauge(
            "rollwise_rollouts",
            "ProgressiveServices by phase",
            ["phase"],
            registry=registry,
        )
        self.step_transitions = Counter(
            "rollwise_step_transitions_total",
            "Canary step index changes written to status",
            registry=registry,
        )
        self.gate_verdicts = Counter(
            "rollwise_gate_verdicts_total",
            "Gate measurements by gate and verdict",
            ["gate", "verdict"],
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            "rollwise_reconcile_duration_seconds",
            "Duration of one reconcile pass (observe, measure, decide, apply)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "rollwise_reconcile_errors_total",
            "Reconcile passes that ended in an error (API, action or unexpected)",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "rollwise_workqueue_depth",
            "Keys waiting for a worker",
            registry=registry,
        )
        for phase in Phase:
            self.rollouts.labels(phase=phase.value).set(0)

    def phase_changed(self, before: str | None, after: str | None) -> None:
        """Move one ProgressiveService from the `before` phase to `after` (None: not counted;
        which service is in which phase is kept in controller.service_memory)."""
        if before is not None:
            self.rollouts.labels(phase=before).dec()
        if after is not None:
            self.rollouts.labels(phase=after).inc()


def serve(port: int, registry: CollectorRegistry = REGISTRY) -> None:
    """Serve /metrics on `port` from a background thread (0: not at all)."""
    if port:
        _start_http_server(port, registry=registry)
