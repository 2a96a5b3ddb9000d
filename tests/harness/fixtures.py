"""Fixtures for tests that run the operator against the proving ground (integration, e2e,
reliability): loaded for every test folder by `pytest_plugins` in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.rollouts import Rollouts, gate_manifest
from tests.harness.run import HarnessRun

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def rollwise_crds(cluster: LocalCluster) -> None:
    """The generated CRDs (crds/), installed once and established."""
    cluster.install_crds(CRDS)


@pytest.fixture
def rollouts(api_client: ApiClient, namespace: str, rollwise_crds: None) -> Rollouts:
    return Rollouts(api_client, namespace)


@pytest.fixture
def gate(rollouts: Rollouts, prometheus: PrometheusServer) -> dict[str, object]:
    """MetricGate `error-rate` in the test's namespace, pointing at the real Prometheus."""
    manifest = gate_manifest(rollouts.ns, prometheus.url)
    rollouts.create_gate(manifest)
    return manifest


@pytest.fixture
def operator(
    harness_run: HarnessRun, cluster: LocalCluster, namespace: str, rollwise_crds: None
) -> Iterator[OperatorProcess]:
    """`rollwise run` watching the test's namespace, as a separate process."""
    process = OperatorProcess(
        harness_run, cluster.kubeconfig, [namespace], name=f"operator-{namespace}"
    )
    process.start()
    try:
        yield process
    finally:
        harness_run.note(f"operator {namespace}: RSS {process.rss_mib():.0f} MiB at the end")
        process.stop()
