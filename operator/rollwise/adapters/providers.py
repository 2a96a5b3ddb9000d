"""The metric provider for a gate query, chosen by the gate's provider one-of.

Job gates have no provider here: their measurements are Jobs that the core plans and the
Kubernetes adapter creates and observes.
"""

from __future__ import annotations

from datetime import datetime

from rollwise.adapters.credentials import SecretReader
from rollwise.adapters.outbound import OutboundPolicy
from rollwise.adapters.prometheus import MetricProvider, PrometheusProvider
from rollwise.adapters.web import WebProvider
from rollwise.core.model import GateQuery, MetricSample


class MetricProviders:
    """`measure` by `query.provider`: prometheus or web; never raises."""

    def __init__(self, prometheus: MetricProvider, web: MetricProvider) -> None:
        self.prometheus = prometheus
        self.web = web

    @classmethod
    def default(
        cls,
        pool_size: int,
        web: WebProvider | None = None,
        policy: OutboundPolicy | None = None,
        secrets: SecretReader | None = None,
    ) -> MetricProviders:
        return cls(
            PrometheusProvider(pool_size=pool_size, policy=policy, secrets=secrets),
            web or WebProvider(policy, pool_size=pool_size),
        )

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        if query.provider == "web":
            return self.web.measure(query, now)
        if query.provider == "prometheus":
            return self.prometheus.measure(query, now)
        return MetricSample(
            key=query.key,
            query=query.query,
            measured_at=now,
            error=f"gate {query.gate}: no provider {query.provider!r} in this operator",
        )
