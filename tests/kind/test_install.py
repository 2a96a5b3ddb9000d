"""The chart as shipped, installed with helm into a real cluster from the image our Dockerfile
builds: two operator pods, Ready, one of them the leader; restricted, read-only, probed; no
environment beyond the chart's own. The identity crash of issue 19 would show here as
restarts (uid 65532 has no passwd entry)."""

from __future__ import annotations

import json
from typing import Any

from tests.harness import kind
from tests.harness.kind import KindCluster, Rollout
from tests.harness.wait import hold_for, wait_for
from tests.kind.conftest import KindStage


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def test_helm_install_runs_two_ready_operator_pods_and_one_leader(
    kind_cluster: KindCluster,
) -> None:
    def two_ready() -> list[dict[str, Any]] | None:
        pods = kind_cluster.operator_pods()
        return pods if len(pods) == 2 and all(map(ready, pods)) else None

    pods = wait_for(two_ready, timeout=120, message="two Ready operator pods")
    names = {p["metadata"]["name"] for p in pods}
    holder = wait_for(kind_cluster.lease_holder, timeout=60, message="a Lease holder")

    assert holder in names
    # Each pod answers /readyz itself: exactly one says it leads.
    leaders = [
        json.loads(
            kind_cluster.kubectl(
                "get",
                "--raw",
                f"/api/v1/namespaces/{kind.OPERATOR_NAMESPACE}/pods/{name}:8080/proxy/readyz",
            ).stdout
        )["leader"]
        for name in sorted(names)
    ]
    assert sorted(leaders) == [False, True]
    for pod in pods:
        statuses = pod["status"]["containerStatuses"]
        assert [s["restartCount"] for s in statuses] == [0], "no crash at start"


def test_the_operator_pods_run_as_the_chart_ships_them(kind_stage: KindStage) -> None:
    cluster = kind_stage.cluster
    (pod, *_) = cluster.operator_pods()
    spec = pod["spec"]
    (container,) = spec["containers"]

    assert container["image"] == kind_stage.operator_image
    assert [e["name"] for e in container.get("env", [])] == ["POD_NAME"], "no extra env"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--leader-elect" in container["args"]
    pdb = cluster.get("pdb", "-n", kind.OPERATOR_NAMESPACE)["items"]
    assert [p["spec"]["minAvailable"] for p in pdb] == [1]
    # The restricted Pod Security Standard admits it (a dry-run in an enforcing namespace).
    cluster.kubectl(
        "label",
        "namespace",
        kind.OPERATOR_NAMESPACE,
        "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
        "--dry-run=server",
    )


def test_operator_pods_stay_ready_without_restarts(kind_cluster: KindCluster) -> None:
    def steady() -> bool:
        pods = kind_cluster.operator_pods()
        return len(pods) == 2 and all(
            ready(p) and p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in pods
        )

    hold_for(steady, duration=10, interval=2, message="two Ready operator pods, no restarts")


def test_namespaced_rbac_mode_reconciles_its_namespace(
    kind_stage: KindStage, fresh_namespace: str
) -> None:
    cluster = kind_stage.cluster
    cluster.helm_install(
        "--set",
        "rbac.scope=namespaced",
        "--set",
        f"watchNamespaces={{{fresh_namespace}}}",
        upgrade=True,
    )
    try:
        roles = cluster.get("roles", "-n", fresh_namespace)["items"]
        assert roles, "namespaced RBAC: a Role in the watched namespace"
        _, service = kind.example_route_and_service(fresh_namespace)
        first = kind.at_version(service, kind_stage.app_image, "1.0.0")
        first["spec"]["strategy"]["canary"]["trafficRouting"] = {"replicas": {}}
        rollout = Rollout(cluster, fresh_namespace)
        rollout.apply(first)

        status = rollout.wait_settled("1.0.0", timeout=180)

        assert status["phase"] == "Healthy", status.get("message")
    finally:
        cluster.helm_install("--reset-values", upgrade=True)
