"""Flux for real (docs/gitops.md): Flux's source-controller and kustomize-controller v1.9.6,
built from their Go modules and run against the proving ground, sync a MetricGate and a
ProgressiveService from a Git server on loopback with the Kustomization of docs/gitops.md
(`wait: true` and its healthCheckExprs).

- A commit of a new version rolls out; the Kustomization turns Ready only once the rollout is
  Healthy.
- A commit of a bad version rolls back, and the Kustomization fails as soon as it does, far
  from its timeout.
- Re-syncs never change the ProgressiveService (its generation stays: nothing the operator
  writes is drift to Flux).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.harness.cluster import LocalCluster
from tests.harness.flux import FluxControllers, GitServer
from tests.harness.kstatus import flux_health_exprs
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.rollouts import Rollouts, gate_manifest, service_manifest
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

pytestmark = pytest.mark.cluster

TIMEOUT_S = 120  # the Kustomization's health timeout


@pytest.fixture(scope="module")
def flux(cluster: LocalCluster, harness_run: HarnessRun) -> Iterator[GitServer]:
    git = GitServer(harness_run.state_dir, harness_run.log_dir, harness_run.run_id)
    controllers = FluxControllers(
        cluster, harness_run.state_dir, harness_run.log_dir, harness_run.run_id
    )
    git.start()
    try:
        controllers.start()
        try:
            yield git
        finally:
            controllers.stop()
    finally:
        git.stop()


def kustomization(namespace: str, git: GitServer) -> list[dict[str, Any]]:
    source = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "shop", "namespace": namespace},
        "spec": {"interval": "2s", "url": git.url(namespace), "ref": {"branch": "main"}},
    }
    sync = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "shop", "namespace": namespace},
        "spec": {
            "interval": "10s",
            "path": "./",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "shop"},
            "targetNamespace": namespace,
            "wait": True,
            "timeout": f"{TIMEOUT_S}s",
            "healthCheckExprs": [
                {
                    "apiVersion": "rollwise.dev/v1alpha1",
                    "kind": "ProgressiveService",
                    **flux_health_exprs(),
                }
            ],
        },
    }
    return [source, sync]


def ready_of(api: client.ApiClient, namespace: str) -> tuple[str, str, str]:
    """(Ready status, reason, lastAttemptedRevision) of the Kustomization."""
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "kustomize.toolkit.fluxcd.io", "v1", namespace, "kustomizations", "shop"
    )
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    return (
        str(ready.get("status", "")),
        str(ready.get("reason", "")),
        str(status.get("lastAttemptedRevision", "")),
    )


def test_flux_syncs_a_release_waits_for_it_and_fails_fast_on_a_rollback(
    cluster: LocalCluster,
    api_client: client.ApiClient,
    rollouts: Rollouts,
    prometheus: PrometheusServer,
    operator: OperatorProcess,
    flux: GitServer,
    harness_run: HarnessRun,
) -> None:
    ns = rollouts.ns
    steps = [
        {"setWeight": 50},
        {"analysis": {"gates": [{"name": "error-rate", "args": {"service": "payment"}}]}},
    ]

    def commit(version: str, error_rate: float = 0.0) -> str:
        service = service_manifest(ns, version, steps=steps, migration=False, error_rate=error_rate)
        gate = gate_manifest(ns, prometheus.url)
        for obj in (service, gate):
            del obj["metadata"]["namespace"]  # the Kustomization's targetNamespace
        return flux.commit(ns, {"gate.yaml": [gate], "payment.yaml": [service]}, version)

    first = commit("1.0.0")
    for obj in kustomization(ns, flux):
        cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))
    wait_for(
        lambda: ready_of(api_client, ns)[0] == "True" and first in ready_of(api_client, ns)[2],
        timeout=120,
        message="the Kustomization Ready at the first commit",
    )
    assert rollouts.status()["phase"] == "Healthy"
    generation = rollouts.get()["metadata"]["generation"]

    second = commit("2.0.0")
    seen_ready_early = []

    def synced_and_ready() -> bool:
        ready, _, revision = ready_of(api_client, ns)
        if ready == "True" and second in revision:
            status = rollouts.status()
            healthy = status.get("phase") == "Healthy"
            if not (healthy and status["stable"]["version"] == "2.0.0"):
                seen_ready_early.append(status.get("phase"))
            return True
        return False

    wait_for(synced_and_ready, timeout=TIMEOUT_S + 30, message="Ready at the second commit")
    assert seen_ready_early == [], f"Ready before the rollout was Healthy: {seen_ready_early}"
    assert rollouts.get()["metadata"]["generation"] == generation + 1

    third = commit("3.0.0", error_rate=0.5)
    committed = time.monotonic()
    rollouts_done = wait_for(
        lambda: rollouts.status().get("phase") == "RolledBack",
        timeout=TIMEOUT_S,
        message="3.0.0 rolled back",
    )
    assert rollouts_done
    rolled_back = time.monotonic()
    wait_for(
        lambda: ready_of(api_client, ns)[0] == "False" and third in ready_of(api_client, ns)[2],
        timeout=TIMEOUT_S,
        message="the Kustomization failed at the third commit",
    )
    failed = time.monotonic()
    harness_run.note(
        f"flux: rollback {rolled_back - committed:.1f}s after the commit; Kustomization failed "
        f"{failed - rolled_back:.1f}s after the rollback (health timeout {TIMEOUT_S}s)"
    )
    assert failed - committed < TIMEOUT_S, "failed at its timeout, not when the rollout did"
    reason = ready_of(api_client, ns)[1]
    assert reason in ("HealthCheckFailed", "ProgressingWithRetry", "ReconciliationFailed"), reason
    # Re-syncs after the rollback: the operator's writes (status, annotations) are not drift.
    generation = rollouts.get()["metadata"]["generation"]
    for token in ("resync-1", "resync-2"):
        resync(api_client, ns, token)
    assert rollouts.get()["metadata"]["generation"] == generation


def resync(api: client.ApiClient, namespace: str, token: str) -> None:
    """Ask kustomize-controller for a sync now (as `flux reconcile` does) and wait for it."""
    custom = client.CustomObjectsApi(api)
    coordinates = ("kustomize.toolkit.fluxcd.io", "v1", namespace, "kustomizations", "shop")
    body = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}
    custom.patch_namespaced_custom_object(*coordinates, body)
    wait_for(
        lambda: (
            (custom.get_namespaced_custom_object(*coordinates).get("status") or {}).get(
                "lastHandledReconcileAt"
            )
            == token
        ),
        timeout=60,
        message=f"the Kustomization synced again ({token})",
    )
