"""Scaling on the real control plane.

- maxSurge/maxUnavailable: an abort at 100% weight never leaves fewer ready pods than replicas
  (followed exactly, through a pod watch), the pods asked for stay within replicas+maxSurge
  (read from status at every poll), and the Service is not drained onto a stable that has no
  ready pod yet.
- The scale subresource: the kube-controller-manager's HPA, fed by metrics-server, scales a
  ProgressiveService paused mid-canary, and the canary/stable split follows the replica count.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from kubernetes import client, watch

from tests.harness.cluster import LocalCluster
from tests.harness.metrics import (
    Autoscaling,
    PodUsage,
    ScaleTarget,
    desired_replicas,
    hpa_manifest,
)
from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import Rollouts, service_manifest
from tests.harness.wait import wait_for

pytestmark = pytest.mark.cluster

REPLICAS = 6


class ReadyPods:
    """Follows the service's workload pods and its Service `<service>` through two watches:
    every readiness change and every selector change is seen in order, so the lowest counts
    are exact, not sampled: all ready pods, and the ready pods the Service selects."""

    def __init__(self, api: client.ApiClient, namespace: str, service: str) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._service = service
        self._selector = f"app.kubernetes.io/name={service},rollwise.dev/role=workload"
        self._pods: dict[str, tuple[bool, dict[str, str]]] = {}  # name: (ready, labels)
        self._service_selector: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.lowest: int | None = None
        self.lowest_behind: int | None = None
        self.seen = 0  # watch events followed
        self.error: Exception | None = None
        self._watches = [watch.Watch(), watch.Watch()]
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> ReadyPods:
        pods = self._core.list_namespaced_pod(self._namespace, label_selector=self._selector)
        for pod in pods.items:
            self._pods[pod.metadata.name] = (self.is_ready(pod), dict(pod.metadata.labels or {}))
        services = self._core.list_namespaced_service(
            self._namespace, field_selector=f"metadata.name={self._service}"
        )
        for svc in services.items:
            self._service_selector = dict(svc.spec.selector or {})
        # The lowest counts start from the whole lists, not from each object as it is read.
        self.lowest, self.lowest_behind = self._counts()
        streams = [
            (
                self._watches[0],
                self._core.list_namespaced_pod,
                pods.metadata.resource_version,
                {"label_selector": self._selector},
            ),
            (
                self._watches[1],
                self._core.list_namespaced_service,
                services.metadata.resource_version,
                {"field_selector": f"metadata.name={self._service}"},
            ),
        ]
        for w, lister, version, options in streams:
            thread = threading.Thread(
                target=self._run, args=(w, lister, version, options), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for w in self._watches:
            w.stop()
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self, w: watch.Watch, lister: Any, version: str, options: dict[str, str]) -> None:
        try:
            for event in w.stream(
                lister, self._namespace, resource_version=version, timeout_seconds=600, **options
            ):
                self._see(event["object"], deleted=event["type"] == "DELETED")
                if self._stop.is_set():
                    return
        except Exception as exc:  # surfaced by check(): a broken watch proves nothing
            if not self._stop.is_set():  # stopping closes the stream under the reader
                self.error = exc

    def check(self) -> tuple[int, int]:
        """(lowest ready pods, lowest ready pods behind the Service), after making sure the
        watches followed everything."""
        assert self.error is None, f"a watch broke: {self.error!r}"
        assert self.seen > 0, "the watches saw no change at all"
        assert self.lowest is not None and self.lowest_behind is not None
        return self.lowest, self.lowest_behind

    def _counts(self) -> tuple[int, int]:
        wanted = self._service_selector.items()
        ready = sum(r for r, _ in self._pods.values())
        behind = sum(r for r, labels in self._pods.values() if wanted <= labels.items())
        return ready, behind

    def _see(self, obj: Any, *, deleted: bool) -> None:
        with self._lock:
            if obj.kind == "Service" or isinstance(obj, client.V1Service):
                if not deleted:
                    self._service_selector = dict(obj.spec.selector or {})
            elif deleted:
                self._pods.pop(obj.metadata.name, None)
            else:
                self._pods[obj.metadata.name] = (
                    self.is_ready(obj),
                    dict(obj.metadata.labels or {}),
                )
            ready, behind = self._counts()
            self.lowest = ready if self.lowest is None else min(self.lowest, ready)
            self.lowest_behind = (
                behind if self.lowest_behind is None else min(self.lowest_behind, behind)
            )
            self.seen += 1

    @staticmethod
    def is_ready(pod: Any) -> bool:
        return pod.metadata.deletion_timestamp is None and any(
            c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
        )


def test_abort_at_full_weight_keeps_every_replica_ready(
    api_client: client.ApiClient,
    rollouts: Rollouts,
    gate: dict[str, Any],
    operator: OperatorProcess,
) -> None:
    steps = [
        {"setWeight": 100},
        {"analysis": {"gates": [{"name": "error-rate", "args": {"service": "payment"}}]}},
    ]
    first = service_manifest(rollouts.ns, "1.0.0", replicas=REPLICAS, steps=steps, migration=False)
    bad = service_manifest(
        rollouts.ns, "2.0.0", replicas=REPLICAS, steps=steps, migration=False, error_rate=0.5
    )
    for manifest in (first, bad):
        manifest["spec"]["strategy"]["canary"] |= {"maxSurge": 2, "maxUnavailable": 0}
    rollouts.apply(first)
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    asked: list[int] = []

    def sizes(status: dict[str, Any]) -> dict[str, Any]:
        """Every status read records the pods asked for (stable + canary) on the way."""
        asked.append(
            ((status.get("stable") or {}).get("replicas") or 0)
            + ((status.get("canary") or {}).get("replicas") or 0)
        )
        return status

    with ReadyPods(api_client, rollouts.ns, "payment") as pods:
        rollouts.apply(bad)
        rollouts.wait_status(
            lambda s: (
                sizes(s).get("canaryWeight") == 100
                and (s.get("canary") or {}).get("readyReplicas") == REPLICAS
            ),
            timeout=120,
            message="canary at 100%, every pod on it",
        )
        rolled = rollouts.wait_status(
            lambda s: sizes(s).get("phase") == "RolledBack", timeout=120, message="RolledBack"
        )
        rollouts.wait_status(
            lambda s: (
                (sizes(s).get("stable") or {}).get("readyReplicas") == REPLICAS
                and (s.get("canary") or {}).get("replicas") == 0
            ),
            timeout=60,
            message="stable back at full size, canary at 0",
        )

    assert rolled["abort"]["reason"] == "GateFailed"
    lowest, lowest_behind = pods.check()
    assert lowest >= REPLICAS, f"ready pods fell to {lowest} of {REPLICAS}"
    assert max(asked) <= REPLICAS + 2, asked
    # Traffic left the canary only once stable's first surge of pods was ready: the Service
    # never selected fewer than maxSurge ready pods (at 100% weight stable starts from none).
    assert lowest_behind >= 2, f"the Service selected {lowest_behind} ready pods at one point"


# --------------------------------------------------------------- an HPA on a ProgressiveService

HPA_MIN, HPA_MAX = 2, 8
TARGET_M = 50  # the HPA's AverageValue target, millicores per pod
HIGH_M, BUSY_M, IDLE_M = 400, 48, 0
POD_LABELS = {"app": "payment-hpa"}
IDLE_LABEL = {"load": "idle"}
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def split(rollouts: Rollouts) -> tuple[int, int, int]:
    """(spec.replicas, canary pods, stable pods) as the status reports them."""
    obj = rollouts.get()
    status = obj.get("status") or {}
    return (
        int(obj["spec"]["replicas"]),
        int((status.get("canary") or {}).get("replicas") or 0),
        int((status.get("stable") or {}).get("replicas") or 0),
    )


def kubectl_split(cluster: LocalCluster, namespace: str) -> tuple[int, int, int]:
    """The same three numbers from `kubectl get psvc`'s own printer columns."""
    out = cluster.kubectl(
        "get",
        "psvc",
        "payment",
        "-n",
        namespace,
        "--no-headers",
        "-o",
        "custom-columns=R:.spec.replicas,C:.status.canary.replicas,S:.status.stable.replicas",
    ).stdout.split()
    wide = cluster.kubectl("get", "psvc", "payment", "-n", namespace, "-o", "wide").stdout
    header, row = wide.splitlines()[:2]
    names = header.split()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    columns = {n: row[a:b].strip() for n, (a, b) in zip(names, bounds, strict=True)}
    assert (columns["REPLICAS"], columns["CANARY-PODS"], columns["STABLE-PODS"]) == tuple(out), wide
    return int(out[0]), int(out[1]), int(out[2])


def settled_at(rollouts: Rollouts, replicas: int, canary: int, stable: int) -> bool:
    """Spec, status and the ReplicaSets' ready pods all show this split."""
    if split(rollouts) != (replicas, canary, stable):
        return False
    status = rollouts.status()
    sets = rollouts.replica_sets()
    ready = {
        rs.metadata.labels.get("rollwise.dev/revision"): rs.status.ready_replicas or 0
        for rs in sets.values()
    }
    return (
        status.get("replicas") == replicas
        and ready.get(status["canary"]["revision"]) == canary
        and ready.get(status["stable"]["revision"]) == stable
    )


def test_an_hpa_scales_a_paused_canary_and_the_split_follows(
    cluster: LocalCluster,
    api_client: client.ApiClient,
    rollouts: Rollouts,
    operator: OperatorProcess,
) -> None:
    """2 -> 8 while paused at 25%: canary/stable 1/1 -> 2/6; then the HPA brings it to 4: 1/3.

    Arithmetic (AverageValue target 50m, min 2, max 8):
    - 2 pods at 400m: ratio 8 -> ceil(2 * 8) = 16 -> clamped to 8; 25% of 8 = 2 canary pods;
    - at 8 pods, 4 at 48m and 4 idle (0m) with the lowest pod-deletion-cost (1 canary pod, 3
      stable ones: exactly what 25% of 4 removes): average 24m, ratio 0.48 -> ceil(3.84) = 4,
      and the 4 left at 48m give ratio 0.96, inside the HPA's 10% tolerance: it stays at 4."""
    usage = PodUsage(api_client)
    autoscaling = Autoscaling(api_client, rollouts.ns)
    target = ScaleTarget.progressive_service("payment")
    core = client.CoreV1Api(api_client)
    steps = [{"setWeight": 25}, {"pause": {}}]
    first = service_manifest(
        rollouts.ns, "1.0.0", replicas=HPA_MIN, steps=steps, migration=False, pod_labels=POD_LABELS
    )
    try:
        usage.set_cpu_usage(rollouts.ns, POD_LABELS, BUSY_M)
        rollouts.apply(first)
        rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
        rollouts.apply(
            service_manifest(
                rollouts.ns,
                "2.0.0",
                replicas=HPA_MIN,
                steps=steps,
                migration=False,
                pod_labels=POD_LABELS,
            )
        )
        rollouts.wait_status(
            lambda s: s.get("phase") == "Paused" and s.get("canaryWeight") == 25,
            timeout=90,
            message="paused at 25%",
        )
        wait_for(lambda: settled_at(rollouts, 2, 1, 1), timeout=60, message="1/1 at 2 replicas")
        assert autoscaling.scale(target)["status"]["selector"]

        usage.set_cpu_usage(rollouts.ns, POD_LABELS, HIGH_M)
        up = desired_replicas(
            HPA_MIN, HIGH_M / TARGET_M, min_replicas=HPA_MIN, max_replicas=HPA_MAX
        )
        assert up == 8
        autoscaling.create_hpa(
            hpa_manifest(
                "payment",
                target,
                min_replicas=HPA_MIN,
                max_replicas=HPA_MAX,
                cpu_average_millicores=TARGET_M,
            )
        )
        wait_for(
            lambda: settled_at(rollouts, 8, 2, 6),
            timeout=180,
            interval=0.5,
            message="the HPA at 8: canary/stable 2/6",
        )
        assert kubectl_split(cluster, rollouts.ns) == (8, 2, 6)
        assert rollouts.status()["phase"] == "Paused"

        # Every pod needs a metric before usage drops (the HPA leaves initialising pods out).
        def eight_measured() -> dict[str, Any] | None:
            seen = usage.pod_metrics(rollouts.ns, POD_LABELS)
            high = {n for n, m in seen.items() if m["cpu_millicores"] == HIGH_M}
            return seen if len(high) == 8 else None

        wait_for(eight_measured, timeout=120, interval=1, message="8 pods measured at 400m")
        status = rollouts.status()
        by_revision: dict[str, list[str]] = {}
        for pod in core.list_namespaced_pod(rollouts.ns, label_selector="app=payment-hpa").items:
            if pod.metadata.deletion_timestamp is None:
                revision = pod.metadata.labels["rollwise.dev/revision"]
                by_revision.setdefault(revision, []).append(pod.metadata.name)
        canary_pods = sorted(by_revision[status["canary"]["revision"]])
        stable_pods = sorted(by_revision[status["stable"]["revision"]])
        assert (len(canary_pods), len(stable_pods)) == (2, 6)
        for name in canary_pods[:1] + stable_pods[:3]:
            core.patch_namespaced_pod(
                name,
                rollouts.ns,
                {"metadata": {"labels": IDLE_LABEL, "annotations": {DELETION_COST: "-100"}}},
            )
        usage.set_cpu_usages(
            rollouts.ns, [(POD_LABELS, BUSY_M), ({**POD_LABELS, **IDLE_LABEL}, IDLE_M)]
        )
        down = desired_replicas(
            8, (4 * BUSY_M + 4 * IDLE_M) / 8 / TARGET_M, min_replicas=HPA_MIN, max_replicas=HPA_MAX
        )
        assert down == 4
        wait_for(
            lambda: settled_at(rollouts, 4, 1, 3),
            timeout=180,
            interval=0.5,
            message="the HPA at 4: canary/stable 1/3",
        )
        assert kubectl_split(cluster, rollouts.ns) == (4, 1, 3)
        status = rollouts.status()
        assert status["phase"] == "Paused" and status["canaryWeight"] == 25
        assert any("New size: 8" in m for m in autoscaling.rescale_events("payment"))
        assert any("New size: 4" in m for m in autoscaling.rescale_events("payment"))
    finally:
        usage.clear(rollouts.ns)
