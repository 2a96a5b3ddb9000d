"""The metric provider for a gate query, keyed by the gate's provider one-of.

Job gates are never measured here: their measurements are Jobs that the core plans and the
Kubernetes adapter creates and observes (providers/job.py builds and reads them). The dispatch
is a `match` over ProviderKind ending in `assert_never`, so a new provider kind in the API is a
mypy error here until it has its file and its case.
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from rollwise.adapters.providers.prometheus import PrometheusProvider
from rollwise.adapters.providers.provider import MetricProvider
from rollwise.adapters.providers.web import WebProvider
from rollwise.api.gates import ProviderKind
from rollwise.core.model import GateQuery, MetricSample


class MetricProviders:
    """`measure` by `query.provider`: prometheus or web; never raises."""

    def __init__(self, prometheus: MetricProvider, web: MetricProvider) -> None:
        self.prometheus = prometheus
        self.web = web

    @classmethod
    def default(cls, pool_size: int, web: WebProvider | None = None) -> MetricProviders:
        return cls(PrometheusProvider(pool_size=pool_size), web or WebProvider(pool_size=pool_size))

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        kind = query.provider
        match kind:
            case ProviderKind.WEB:
                return self.web.measure(query, now)
            case ProviderKind.PROMETHEUS:
                return self.prometheus.measure(query, now)
            case ProviderKind.JOB:
                return MetricSample(
                    key=query.key,
                    query=query.query,
                    measured_at=now,
                    error=f"gate {query.gate}: a job gate is measured by its Job, not queried",
                )
            case _:
                assert_never(kind)
