"""`helm uninstall` removes the operator, never the users' workloads: the ProgressiveServices'
pods keep serving (this file runs last: it removes the shared operator)."""

from __future__ import annotations

from tests.harness import kind
from tests.harness.kind import Rollout
from tests.harness.wait import hold_for, wait_for
from tests.kind.conftest import KindStage


def test_helm_uninstall_leaves_the_workloads_serving(
    kind_stage: KindStage, fresh_namespace: str
) -> None:
    cluster = kind_stage.cluster
    _, service = kind.example_route_and_service(fresh_namespace)
    service["spec"]["strategy"]["canary"].pop("analysis", None)
    service["spec"]["strategy"]["canary"]["trafficRouting"] = {"replicas": {}}
    rollout = Rollout(cluster, fresh_namespace)
    rollout.apply(kind.at_version(service, kind_stage.app_image, "1.0.0"))
    assert rollout.wait_settled("1.0.0", timeout=180)["phase"] == "Healthy"

    def serving() -> bool:
        endpoints = cluster.get(
            "endpointslices", "-n", fresh_namespace, "-l", "kubernetes.io/service-name=payment"
        )["items"]
        ready = [
            e
            for s in endpoints
            for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")
        ]
        return len(ready) == 2

    wait_for(serving, timeout=60, message="payment's two endpoints ready")

    cluster.helm("uninstall", kind.RELEASE, "-n", kind.OPERATOR_NAMESPACE, "--wait")
    wait_for(lambda: not cluster.operator_pods(), timeout=120, message="operator pods gone")

    hold_for(serving, duration=10, interval=2, message="payment serving without the operator")
    assert rollout.get()["status"]["phase"] == "Healthy"
    # A request from inside the cluster's network to the Service answers.
    answer = cluster.kubectl(
        "get",
        "--raw",
        f"/api/v1/namespaces/{fresh_namespace}/services/payment:80/proxy/",
    ).stdout
    assert answer.startswith("1.0.0 ")
