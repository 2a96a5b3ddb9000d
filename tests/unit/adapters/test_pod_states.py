"""What a revision's pods that are not ready are doing, in words, for the reason of a
progress deadline (issue 19: on real pods the reason only counted them)."""

from __future__ import annotations

from typing import Any

from rollwise.adapters.manifests.readers import replica_set_states
from rollwise.adapters.pod_states import not_ready_summary, pod_not_ready_state


def pod(name: str, status: dict[str, Any], created: str = "2026-12-07T10:00:00Z") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {"rollwise.dev/revision": "c1", "rollwise.dev/role": "workload"},
        },
        "status": status,
    }


CRASH_LOOPING = {
    "phase": "Running",
    "containerStatuses": [
        {
            "name": "app",
            "ready": False,
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
        }
    ],
}
NEVER_READY = {
    "phase": "Running",
    "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
    "containerStatuses": [
        {"name": "app", "ready": False, "restartCount": 0, "state": {"running": {}}}
    ],
}
UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu.",
        }
    ],
}


def test_a_crash_looping_pod_is_described_with_its_exit_code_and_restarts() -> None:
    text = pod_not_ready_state(pod("web-c1-a", CRASH_LOOPING))

    assert text == "pod web-c1-a: container app CrashLoopBackOff (last exit code 1, 4 restarts)"


def test_a_running_pod_that_never_turns_ready_is_described_as_running_not_ready() -> None:
    assert pod_not_ready_state(pod("web-c1-b", NEVER_READY)) == (
        "pod web-c1-b: Running, container app not ready"
    )


def test_an_unschedulable_pod_is_described_with_the_schedulers_message() -> None:
    text = pod_not_ready_state(pod("web-c1-c", UNSCHEDULABLE))

    assert text.startswith("pod web-c1-c: Pending, Unschedulable: 0/1 nodes are available")


def test_the_summary_describes_the_oldest_pods_and_counts_the_rest() -> None:
    pods = [
        pod("c", NEVER_READY, "2026-12-07T10:00:03Z"),
        pod("a", CRASH_LOOPING, "2026-12-07T10:00:01Z"),
        pod("b", NEVER_READY, "2026-12-07T10:00:02Z"),
    ]

    text = not_ready_summary(pods)

    assert text.startswith("pod a: container app CrashLoopBackOff")
    assert "; pod b: Running" in text
    assert text.endswith("; and 1 more not ready")


def test_replica_set_states_describe_only_the_pods_that_are_not_ready() -> None:
    ready = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "app", "ready": True, "state": {"running": {}}}],
    }
    rs = {
        "metadata": {
            "name": "web-c1",
            "labels": {"rollwise.dev/revision": "c1"},
            "ownerReferences": [{"uid": "uid-1", "controller": True}],
        },
        "spec": {"replicas": 2},
        "status": {"replicas": 2, "readyReplicas": 1},
    }

    states = replica_set_states([rs], [pod("ok", ready), pod("bad", CRASH_LOOPING)], "uid-1")

    assert states["c1"].not_ready.startswith("pod bad: container app CrashLoopBackOff")
    assert "pod ok" not in states["c1"].not_ready
