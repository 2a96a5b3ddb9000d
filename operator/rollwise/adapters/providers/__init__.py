"""Metric providers: one file per `provider` kind of a MetricGate (prometheus, web, job,
influxdb, graphite; comparison.py: a comparison gate's range queries), the
MetricProvider Protocol (provider.py) and the registry that picks one (registry.py)."""
