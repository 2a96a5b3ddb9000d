"""The operator fixtures live in tests/harness/fixtures.py (shared with e2e and reliability);
re-exported here for modules that import them by this name."""

from tests.harness.fixtures import gate, operator, rollouts, rollwise_crds

__all__ = ["gate", "operator", "rollouts", "rollwise_crds"]
