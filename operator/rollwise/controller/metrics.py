"""The operator's own Prometheus metrics, served on --metrics-port."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as _start_http_server

from rollwise.api.service_status import Phase, ServiceStatus

ServiceKey = tuple[str, str]  # (namespace, name)


class ServiceMetrics:
    """Series labelled by namespace and name, so "alert when shop/payment rolls back" can be
    written. Cardinality is bounded by what exists: one info series and one weight series per
    ProgressiveService, its gates x 4 verdicts, the abort reasons it rolled back for; a label
    value that changes (phase, versions) replaces its series, and every series of a service is
    removed when the service is deleted (`forget`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.info = Gauge(
            "rollwise_service_info",
            "1 per ProgressiveService, labelled with its phase and stable and canary versions",
            ["namespace", "name", "phase", "stable", "canary"],
            registry=registry,
        )
        self.weight = Gauge(
            "rollwise_service_canary_weight",
            "The canary weight in status, per ProgressiveService",
            ["namespace", "name"],
            registry=registry,
        )
        self.verdicts = Counter(
            "rollwise_service_gate_verdicts_total",
            "Gate measurements per ProgressiveService, by gate and verdict",
            ["namespace", "name", "gate", "verdict"],
            registry=registry,
        )
        self.rollbacks = Counter(
            "rollwise_service_rollbacks_total",
            "Rollbacks per ProgressiveService (RolledBack reached), by abort reason",
            ["namespace", "name", "reason"],
            registry=registry,
        )
        self._lock = threading.Lock()
        self._info: dict[ServiceKey, tuple[str, ...]] = {}
        self._series: dict[ServiceKey, set[tuple[str, tuple[str, ...]]]] = {}

    def record(
        self,
        key: ServiceKey,
        status: ServiceStatus,
        verdicts: Iterable[tuple[str, str]],
        rolled_back: str | None,
    ) -> None:
        """One pass's status, its gate verdicts (gate, verdict) and a rollback it reached."""
        namespace, name = key
        info = (
            namespace,
            name,
            status.phase.value,
            status.stable.version if status.stable else "",
            status.canary.version if status.canary else "",
        )
        with self._lock:
            previous = self._info.get(key)
            if previous != info:
                if previous is not None:
                    self.info.remove(*previous)
                self.info.labels(*info).set(1)
                self._info[key] = info
            self.weight.labels(namespace, name).set(status.canary_weight)
            series = self._series.setdefault(key, set())
            for gate, verdict in verdicts:
                self.verdicts.labels(namespace, name, gate, verdict).inc()
                series.add(("verdicts", (namespace, name, gate, verdict)))
            if rolled_back is not None:
                self.rollbacks.labels(namespace, name, rolled_back).inc()
                series.add(("rollbacks", (namespace, name, rolled_back)))

    def forget(self, key: ServiceKey) -> None:
        """The service is gone: every series about it goes."""
        with self._lock:
            info = self._info.pop(key, None)
            if info is not None:
                self.info.remove(*info)
                self.weight.remove(*key)
            for metric, labels in self._series.pop(key, set()):
                getattr(self, metric).remove(*labels)


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
        self.services = ServiceMetrics(registry)

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
