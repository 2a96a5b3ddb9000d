"""Metric providers: one file per `provider` kind of a MetricGate (prometheus, web, job), the
MetricProvider Protocol (provider.py) and the registry that picks one (registry.py)."""
