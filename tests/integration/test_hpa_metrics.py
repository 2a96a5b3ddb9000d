"""Real metrics for a real HPA: kwok usage -> metrics-server -> the metrics API that
`kubectl top` and the kube-controller-manager's HPA read.

The HPA itself, scaling a ProgressiveService mid-canary (2 -> 8 -> 4, with the arithmetic and
the pod-deletion-cost trick that makes 4 a stable point), is in test_scaling.py: one HPA story
on the real controller keeps the warm CI run short.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.harness.cluster import LocalCluster
from tests.harness.metrics import (
    PodUsage,
)
from tests.harness.wait import wait_for

pytestmark = pytest.mark.cluster

REQUEST_M = 100
TARGET_PERCENT = 50
MIN_REPLICAS, MAX_REPLICAS = 2, 8
HIGH_M = 400
# 48m, not 50m: the controller rounds each pod's CPU up to whole millicores, and the first
# sample after a change can be a few ppm off (kwok integrates between its own evaluations), so
# idle pods may read 1m once and busy ones 49m. 50m would then give 4*51+4*1 = 208m = 26%,
# ratio 0.52, ceil(8*0.52) = 5: seen, 4 times out of 6. With 48m every reading gives 4.
BUSY_M, IDLE_M = 48, 0
LABELS = {"app": "web"}
IDLE_LABEL = {"load": "idle"}
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def deployment(name: str, replicas: int) -> client.V1Deployment:
    container = client.V1Container(
        name="app",
        image="registry.example/web:1.0",
        resources=client.V1ResourceRequirements(
            requests={"cpu": f"{REQUEST_M}m", "memory": "64Mi"}
        ),
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=LABELS),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=LABELS),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=LABELS),
                spec=client.V1PodSpec(containers=[container]),
            ),
        ),
    )


def running_pods(core: client.CoreV1Api, namespace: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None and p.status and p.status.phase == "Running"
    ]


@pytest.fixture
def usage(api_client: ApiClient, namespace: str) -> Iterator[PodUsage]:
    pod_usage = PodUsage(api_client)
    try:
        yield pod_usage
    finally:
        pod_usage.clear(namespace)


def metrics_are(
    usage: PodUsage, namespace: str, expected: dict[str, int]
) -> dict[str, dict[str, Any]] | None:
    """The metrics API reports exactly ``expected`` millicores for exactly these pods."""
    seen = usage.pod_metrics(namespace, LABELS)
    got = {name: m["cpu_millicores"] for name, m in seen.items()}
    return seen if got == expected else None


def two_running(core: client.CoreV1Api, namespace: str) -> list[str] | None:
    names = sorted(p.metadata.name for p in running_pods(core, namespace))
    return names if len(names) == 2 else None


def test_metrics_api_serves_the_usage_a_test_sets(
    cluster: LocalCluster, api_client: ApiClient, namespace: str, usage: PodUsage
) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    usage.set_cpu_usage(namespace, LABELS, 250, memory="96Mi")
    apps.create_namespaced_deployment(namespace, deployment("web", 2))
    # Both pods: under load the second may start running a moment after the first.
    pods = wait_for(
        lambda: two_running(core, namespace),
        timeout=60,
        message="2 running pods",
    )
    assert len(pods) == 2

    # Group rule: every pod of the selector, including ones created after the rule.
    seen = wait_for(
        lambda: metrics_are(usage, namespace, dict.fromkeys(pods, 250)),
        timeout=60,
        interval=1,
        message="metrics.k8s.io to report 250m for both pods",
    )
    assert {m["memory_bytes"] for m in seen.values()} == {96 * 2**20}

    # One pod's own ResourceUsage wins over the group rule.
    usage.set_pod_cpu_usage(namespace, pods[0], 30)
    wait_for(
        lambda: metrics_are(usage, namespace, {pods[0]: 30, pods[1]: 250}),
        timeout=60,
        interval=1,
        message=f"{pods[0]} at 30m, {pods[1]} still at 250m",
    )

    # kubectl top reads the same API. It rounds up to whole millicores, and kwok's integrated
    # CPU is a few ppm off the scrape interval (e.g. 30.003m), so it may show one more.
    top = cluster.kubectl("top", "pods", "-n", namespace, "--no-headers").stdout
    rows = {line.split()[0]: int(line.split()[1].removesuffix("m")) for line in top.splitlines()}
    assert set(rows) == set(pods), top
    assert 30 <= rows[pods[0]] <= 31 and 250 <= rows[pods[1]] <= 251, top
