"""A real HPA on real metrics: kwok usage -> metrics-server -> kube-controller-manager's HPA.

The chain a ProgressiveService will ride on once its CRD has the scale subresource, proven
here with a plain Deployment (`ScaleTarget.deployment`; `ScaleTarget.progressive_service`
points the same helpers at a ProgressiveService).

Arithmetic (every pod requests 100m, the HPA targets 50% average utilization, min 2, max 8):
- 2 pods at 400m: ratio 400/50 = 8.0 -> ceil(2 * 8.0) = 16 -> clamped to max 8;
- at 8 pods, 4 pods at 48m and 4 (labelled load=idle) at 0m, switched in one write: average
  24m = 24%, ratio 0.48 -> ceil(8 * 0.48) = 4; the 4 idle pods carry the lowest
  pod-deletion-cost, so the ReplicaSet deletes exactly them, and the 4 left at 48m give ratio
  0.96, within the 10% tolerance: the HPA stays at 4 (a stable point, not a pass-through).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.harness.cluster import LocalCluster
from tests.harness.metrics import (
    HPA_DOWNSCALE_STABILIZATION,
    HPA_SYNC_PERIOD,
    Autoscaling,
    PodUsage,
    ScaleTarget,
    desired_replicas,
    hpa_manifest,
)
from tests.harness.run import HarnessRun
from tests.harness.wait import hold_for, wait_for

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


def test_metrics_api_serves_the_usage_a_test_sets(
    cluster: LocalCluster, api_client: ApiClient, namespace: str, usage: PodUsage
) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    usage.set_cpu_usage(namespace, LABELS, 250, memory="96Mi")
    apps.create_namespaced_deployment(namespace, deployment("web", 2))
    pods = wait_for(
        lambda: sorted(p.metadata.name for p in running_pods(core, namespace)) or None,
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


def test_hpa_scales_a_deployment_up_to_max_and_down_to_a_stable_four(
    api_client: ApiClient, namespace: str, usage: PodUsage, harness_run: HarnessRun
) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    autoscaling = Autoscaling(api_client, namespace)
    target = ScaleTarget.deployment("web")

    usage.set_cpu_usage(namespace, LABELS, HIGH_M)
    apps.create_namespaced_deployment(namespace, deployment("web", MIN_REPLICAS))
    up = desired_replicas(
        MIN_REPLICAS,
        HIGH_M / REQUEST_M * 100 / TARGET_PERCENT,
        min_replicas=MIN_REPLICAS,
        max_replicas=MAX_REPLICAS,
    )
    assert up == MAX_REPLICAS

    autoscaling.create_hpa(
        hpa_manifest(
            "web",
            target,
            min_replicas=MIN_REPLICAS,
            max_replicas=MAX_REPLICAS,
            cpu_utilization=TARGET_PERCENT,
        )
    )
    started = time.monotonic()
    wait_for(
        lambda: autoscaling.replicas(target) == up,
        timeout=150,
        interval=0.5,
        message=f"the HPA to scale deployment/web to {up}",
    )
    scale_up_s = time.monotonic() - started
    assert autoscaling.replicas(target) == up

    # Every pod must have a metric before the usage drops: pods the HPA still counts as
    # initialising would be left out of the average (kube-controller-manager's groupPods).
    def all_running() -> list[str] | None:
        names = sorted(p.metadata.name for p in running_pods(core, namespace))
        return names if len(names) == up else None

    pods = wait_for(
        all_running,
        timeout=60,
        message=f"{up} running pods",
    )
    wait_for(
        lambda: metrics_are(usage, namespace, dict.fromkeys(pods, HIGH_M)),
        timeout=90,
        interval=1,
        message=f"metrics for all {up} pods at {HIGH_M}m",
    )

    # Half the pods go idle (and are the first the ReplicaSet removes), the rest drop to 48m,
    # in one write: kwok switches every pod at the same scrape. Until then a node scraped
    # before the switch reports 400m pods, which only pushes the ratio up (8 = max: no-op).
    idle, busy = pods[: up // 2], pods[up // 2 :]
    for name in idle:
        core.patch_namespaced_pod(
            name,
            namespace,
            {"metadata": {"labels": IDLE_LABEL, "annotations": {DELETION_COST: "-100"}}},
        )
    usage.set_cpu_usages(namespace, [(LABELS, BUSY_M), ({**LABELS, **IDLE_LABEL}, IDLE_M)])
    average = (len(idle) * IDLE_M + len(busy) * BUSY_M) / up
    down = desired_replicas(
        up,
        average / REQUEST_M * 100 / TARGET_PERCENT,
        min_replicas=MIN_REPLICAS,
        max_replicas=MAX_REPLICAS,
    )
    assert down == 4
    worst = int((len(idle) * (IDLE_M + 1) + len(busy) * (BUSY_M + 1)) * 100 / (up * REQUEST_M))
    assert (
        desired_replicas(
            up, worst / TARGET_PERCENT, min_replicas=MIN_REPLICAS, max_replicas=MAX_REPLICAS
        )
        == down
    )
    started = time.monotonic()
    trace: list[tuple[float, int, dict[str, int]]] = []  # what the HPA saw, for a failure

    def scaled_down() -> bool:
        seen = usage.pod_metrics(namespace, LABELS)
        replicas = autoscaling.replicas(target)
        trace.append(
            (
                round(time.monotonic() - started, 1),
                replicas,
                {n: m["cpu_millicores"] for n, m in sorted(seen.items())},
            )
        )
        return replicas == down

    wait_for(
        scaled_down,
        timeout=120,
        interval=0.5,
        message=f"the HPA to scale deployment/web down to {down}",
    )
    scale_down_s = time.monotonic() - started
    wait_for(
        lambda: sorted(p.metadata.name for p in running_pods(core, namespace)) == busy,
        timeout=60,
        message=f"only the busy pods left: {busy}",
    )

    # Stable: at 4 pods of 48m the ratio is 0.96. The HPA reports ~48% and stays at 4 over
    # several of its syncs and a fresh metrics scrape.
    def settled() -> dict[str, Any] | None:
        hpa = autoscaling.hpa("web")["status"]
        current = (hpa.get("currentMetrics") or [{}])[0].get("resource", {}).get("current", {})
        ok = (
            hpa.get("currentReplicas") == down
            and hpa.get("desiredReplicas") == down
            # the controller rounds each pod's usage up to whole millicores: 48.003m is 49m
            and current.get("averageUtilization") in (BUSY_M, BUSY_M + 1)
        )
        return hpa if ok else None

    wait_for(settled, timeout=60, interval=1, message="HPA status 4/4 at 50%")
    hold_for(
        lambda: autoscaling.replicas(target) == down and settled(),
        duration=15,
        interval=1,
        message=f"deployment/web to stay at {down}",
    )

    sizes = [
        int(m.split(";")[0].removeprefix("New size: "))
        for m in autoscaling.rescale_events("web")
        if m.startswith("New size: ")
    ]
    # Up in steps (the default scale-up policy allows +100% or +4 pods per 15 s), then one
    # step down to exactly 4: no overshoot, no pass-through.
    assert max(sizes) == up and up in sizes, sizes
    last_up = len(sizes) - 1 - sizes[::-1].index(up)
    changes = [t for i, t in enumerate(trace) if i == 0 or t[1:] != trace[i - 1][1:]]
    (harness_run.log_dir / "hpa-scale-down-trace.json").write_text(json.dumps(changes, indent=1))
    assert sizes[last_up + 1 :] == [down], (sizes, changes)
    harness_run.note(
        f"HPA (sync {HPA_SYNC_PERIOD}, downscale stabilization {HPA_DOWNSCALE_STABILIZATION}): "
        f"2->{up} in {scale_up_s:.1f}s, {up}->{down} in {scale_down_s:.1f}s, "
        f"rescales {sizes}"
    )
