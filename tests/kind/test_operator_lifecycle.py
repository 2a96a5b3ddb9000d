"""The operator's own lifecycle under a rollout in flight, as real pods: the leader pod deleted
(`kubectl delete pod`) mid-canary, and `helm upgrade` to a new image tag mid-canary. The standby
(or the new pod) finishes the rollout; no step is done twice, the migration runs once."""

from __future__ import annotations

from typing import Any

from tests.harness import kind
from tests.harness.kind import Rollout
from tests.harness.wait import wait_for
from tests.kind.conftest import KindStage

# Replica-ratio canaries (no gateway): the operator's own work is what is under test here.
STEPS: list[dict[str, Any]] = [
    {"setWeight": 50},
    {"pause": {"duration": "20s"}},
    {"setWeight": 100},
    {"pause": {"duration": "2s"}},
]


def replicas_service(stage: KindStage, namespace: str, version: str) -> dict[str, Any]:
    _, service = kind.example_route_and_service(namespace)
    manifest = kind.at_version(service, stage.app_image, version, steps=STEPS)
    manifest["spec"]["strategy"]["canary"].pop("analysis", None)
    manifest["spec"]["strategy"]["canary"]["trafficRouting"] = {"replicas": {}}
    return manifest


def completed_steps(status: dict[str, Any], revision: str) -> list[int]:
    return [
        h["step"]
        for h in status.get("history") or []
        if h["event"] == "StepCompleted" and h.get("revision") == revision
    ]


def in_pause(rollout: Rollout) -> dict[str, Any]:
    return rollout.wait_status(
        lambda s: s.get("currentStepIndex") == 1 and s.get("pauseStartedAt"),
        120,
        "the canary's pause step",
    )


def test_leader_pod_deleted_mid_canary_the_standby_finishes_it(
    kind_stage: KindStage, fresh_namespace: str
) -> None:
    cluster = kind_stage.cluster
    rollout = Rollout(cluster, fresh_namespace)
    rollout.apply(replicas_service(kind_stage, fresh_namespace, "1.0.0"))
    assert rollout.wait_settled("1.0.0", timeout=180)["phase"] == "Healthy"
    rollout.apply(replicas_service(kind_stage, fresh_namespace, "2.0.0"))
    paused = in_pause(rollout)
    leader = cluster.lease_holder()

    cluster.kubectl("delete", "pod", leader, "-n", kind.OPERATOR_NAMESPACE, "--wait=false")
    done = rollout.wait_settled("2.0.0", timeout=180)

    assert done["phase"] == "Healthy", done.get("message")
    new_leader = cluster.lease_holder()
    assert new_leader and new_leader != leader
    revision = paused["canary"]["revision"]
    assert completed_steps(done, revision) == [0, 1, 2, 3], "each step once"
    versions = [j["metadata"]["annotations"].get("rollwise.dev/version") for j in rollout.jobs()]
    assert sorted(versions) == ["1.0.0", "2.0.0"], "one migration Job per version"


def test_helm_upgrade_to_a_new_image_mid_canary_completes_the_rollout(
    kind_stage: KindStage, fresh_namespace: str
) -> None:
    cluster = kind_stage.cluster
    rollout = Rollout(cluster, fresh_namespace)
    rollout.apply(replicas_service(kind_stage, fresh_namespace, "1.0.0"))
    assert rollout.wait_settled("1.0.0", timeout=180)["phase"] == "Healthy"
    rollout.apply(replicas_service(kind_stage, fresh_namespace, "2.0.0"))
    paused = in_pause(rollout)

    cluster.helm_install(image=kind_stage.operator_image_next, upgrade=True)
    done = rollout.wait_settled("2.0.0", timeout=180)

    assert done["phase"] == "Healthy", done.get("message")

    def on_new_image() -> list[dict[str, Any]] | None:
        pods = cluster.operator_pods()
        images = {p["spec"]["containers"][0]["image"] for p in pods}
        return pods if len(pods) == 2 and images == {kind_stage.operator_image_next} else None

    pods = wait_for(on_new_image, timeout=120, message="both operator pods on the new image")
    assert cluster.lease_holder() in {p["metadata"]["name"] for p in pods}
    assert completed_steps(done, paused["canary"]["revision"]) == [0, 1, 2, 3]
