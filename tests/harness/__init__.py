"""The proving ground: a real local control plane, Prometheus and a pod-traffic simulator.

See tests/harness/README.md for the public API and how to use it from tests.
"""
