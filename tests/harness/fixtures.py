"""Fixtures for tests that run the operator against the proving ground (integration, e2e,
reliability): loaded for every test folder by `pytest_plugins` in tests/conftest.py."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from tests.harness.cluster import KubectlError, LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.rollouts import Rollouts, gate_manifest
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def rollwise_crds(cluster: LocalCluster) -> None:
    """The generated CRDs (crds/), installed once and established.

    `kubectl wait --for=condition=Established` fails at once, instead of waiting, while a
    just-created CRD has no status.conditions yet ("accessor error: <nil> is of the type
    <nil>"), so it is retried until the deadline."""
    cluster.kubectl("apply", "-k", str(CRDS))
    for crd in ("progressiveservices", "metricgates", "clustermetricgates"):
        name = f"crd/{crd}.rollwise.dev"
        wait_for(
            functools.partial(
                cluster.kubectl, "wait", "--for=condition=Established", name, "--timeout=60s"
            ),
            timeout=60,
            message=f"{name} established",
            ignore=(KubectlError,),
        )


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
