"""The metric provider for a gate query, chosen by the gate's provider one-of.

Job gates have no provider here: their measurements are Jobs that the core plans and the
Kubernetes adapter creates and observes.
"""

from __future__ import annotations

from datetime import datetime

from rollwise.adapters.comparison import ComparisonProvider
from rollwise.adapters.graphite import GraphiteProvider
from rollwise.adapters.influxdb import InfluxDBProvider
from rollwise.adapters.prometheus import MetricProvider, PrometheusProvider
from rollwise.adapters.web import WebProvider
from rollwise.core.model import GateQuery, MetricSample


class MetricProviders:
    """`measure` by `query.provider`: prometheus, web, comparison, influxdb or graphite;
    never raises."""

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
    def default(cls, pool_size: int, web: WebProvider | None = None) -> MetricProviders:
        return cls(
            PrometheusProvider(pool_size=pool_size),
            web or WebProvider(pool_size=pool_size),
            ComparisonProvider(pool_size=pool_size),
            InfluxDBProvider(pool_size=pool_size),
            GraphiteProvider(pool_size=pool_size),
        )

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        if query.provider == "web":
            return self.web.measure(query, now)
        if query.provider == "prometheus":
            return self.prometheus.measure(query, now)
        if query.provider == "comparison":
            return self.comparison.measure(query, now)
        if query.provider == "influxdb":
            return self.influxdb.measure(query, now)
        if query.provider == "graphite":
            return self.graphite.measure(query, now)
        return MetricSample(
            key=query.key,
            query=query.query,
            measured_at=now,
            error=f"gate {query.gate}: no provider {query.provider!r} in this operator",
        )
