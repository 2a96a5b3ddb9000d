"""Canaries that never become ready, as real pods do it: one whose container exits at start
(the kubelet restarts it into CrashLoopBackOff), one that runs but whose readiness probe never
passes. Both miss progressDeadlineSeconds and are rolled back with a reason naming what their
pods were doing. The two rollouts run at once (each in its namespace): the deadline is the
slow part, and they do not interfere."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import kind
from tests.harness.kind import Rollout
from tests.kind.conftest import KindStage

STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "2s"}}]
CASES = {"crash-looping": {"CRASH": "1"}, "never-ready": {"NEVER_READY": "1"}}


def manifest(stage: KindStage, namespace: str, version: str, **extra: Any) -> dict[str, Any]:
    _, service = kind.example_route_and_service(namespace)
    service["spec"]["strategy"]["canary"].pop("analysis", None)
    service["spec"]["strategy"]["canary"]["trafficRouting"] = {"replicas": {}}
    return kind.at_version(service, stage.app_image, version, steps=STEPS, **extra)


@pytest.fixture(scope="module")
def stuck_canaries(kind_stage: KindStage) -> Iterator[dict[str, Rollout]]:
    """1.0.0 Healthy in two namespaces, then 2.0.0 that never turns ready applied to both."""
    cluster = kind_stage.cluster
    rollouts = {}
    for case in CASES:
        namespace = f"deadline-{case}-{secrets.token_hex(2)}"
        cluster.kubectl("create", "namespace", namespace)
        rollouts[case] = Rollout(cluster, namespace)
    for rollout in rollouts.values():
        kind.wait_default_service_account(cluster, rollout.namespace)
        rollout.apply(manifest(kind_stage, rollout.namespace, "1.0.0"))
    for rollout in rollouts.values():
        assert rollout.wait_settled("1.0.0", timeout=180)["phase"] == "Healthy"
    for case, rollout in rollouts.items():
        rollout.apply(
            manifest(kind_stage, rollout.namespace, "2.0.0", progress_deadline=30, **CASES[case])
        )
    yield rollouts
    for rollout in rollouts.values():
        cluster.kubectl("delete", "namespace", rollout.namespace, "--wait=false", check=False)


@pytest.mark.parametrize(
    ("case", "state"),
    [
        ("crash-looping", r"container app (CrashLoopBackOff|terminated: Error)"),
        ("never-ready", r"Running, container app not ready"),
    ],
)
def test_a_canary_that_never_turns_ready_rolls_back_naming_its_pods_state(
    stuck_canaries: dict[str, Rollout], case: str, state: str
) -> None:
    done = stuck_canaries[case].wait_settled("2.0.0", timeout=150)

    assert done["phase"] == "RolledBack", done.get("message")
    assert done["stable"]["version"] == "1.0.0"
    abort = done["abort"]
    assert abort["reason"] == "ProgressDeadlineExceeded"
    assert re.search(r"0/\d+ pods ready after 30s", abort["message"]), abort["message"]
    assert re.search(state, abort["message"]), abort["message"]
