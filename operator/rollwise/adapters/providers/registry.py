"""The metric provider for a gate query, keyed by the gate's provider one-of.

Job gates are never measured here: their measurements are Jobs that the core plans and the
Kubernetes adapter creates and observes (providers/job.py builds and reads them). The dispatch
is a `match` over ProviderKind ending in `assert_never`, so a new provider kind in the API is a
mypy error here until it has its file and its case.
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from rollwise.adapters.credentials import SecretReader
from rollwise.adapters.outbound import OutboundPolicy
from rollwise.adapters.providers.comparison import ComparisonProvider
from rollwise.adapters.providers.graphite import GraphiteProvider
from rollwise.adapters.providers.influxdb import InfluxDBProvider
from rollwise.adapters.providers.prometheus import PrometheusProvider
from rollwise.adapters.providers.provider import MetricProvider
from rollwise.adapters.providers.web import WebProvider
from rollwise.api.gates import ProviderKind
from rollwise.core.model import GateQuery, MetricSample


class MetricProviders:
    """`measure` by `query.provider`: prometheus (a comparison gate's range queries too), web,
    influxdb or graphite; never raises."""

    def __init__(
        self,
        prometheus: MetricProvider,
        web: MetricProvider,
        comparison: MetricProvider | None = None,
        influxdb: MetricProvider | None = None,
        graphite: MetricProvider | None = None,
    ) -> None:
        self.prometheus = prometheus
        self.web = web
        self.comparison = comparison or ComparisonProvider()
        self.influxdb = influxdb or InfluxDBProvider()
        self.graphite = graphite or GraphiteProvider()

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
            ComparisonProvider(pool_size=pool_size, policy=policy, secrets=secrets),
            InfluxDBProvider(pool_size=pool_size, policy=policy),
            GraphiteProvider(pool_size=pool_size, policy=policy),
        )

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        kind = query.provider
        match kind:
            case ProviderKind.WEB:
                return self.web.measure(query, now)
            case ProviderKind.PROMETHEUS:
                if query.comparison is not None:  # canary and stable, range queries
                    return self.comparison.measure(query, now)
                return self.prometheus.measure(query, now)
            case ProviderKind.INFLUXDB:
                return self.influxdb.measure(query, now)
            case ProviderKind.GRAPHITE:
                return self.graphite.measure(query, now)
            case ProviderKind.JOB:
                return MetricSample(
                    key=query.key,
                    query=query.query,
                    measured_at=now,
                    error=f"gate {query.gate}: a job gate is measured by its Job, not queried",
                )
            case _:
                assert_never(kind)
