"""Canaries that never become ready, as real pods do it: one whose container exits at start
(the kubelet restarts it into CrashLoopBackOff), one that runs but whose readiness probe never
passes. Both miss progressDeadlineSeconds and are rolled back with a reason naming what their
pods were doing."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.harness import kind
from tests.harness.kind import Rollout
from tests.kind.conftest import KindStage

STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "2s"}}]


@pytest.mark.parametrize(
    ("env", "state"),
    [
        ({"CRASH": "1"}, r"container app (CrashLoopBackOff|terminated: Error)"),
        ({"NEVER_READY": "1"}, r"Running, container app not ready"),
    ],
    ids=["crash-looping", "never-ready"],
)
def test_a_canary_that_never_turns_ready_rolls_back_naming_its_pods_state(
    kind_stage: KindStage, fresh_namespace: str, env: dict[str, str], state: str
) -> None:
    _, service = kind.example_route_and_service(fresh_namespace)
    service["spec"]["strategy"]["canary"].pop("analysis", None)
    service["spec"]["strategy"]["canary"]["trafficRouting"] = {"replicas": {}}
    rollout = Rollout(kind_stage.cluster, fresh_namespace)
    rollout.apply(kind.at_version(service, kind_stage.app_image, "1.0.0", steps=STEPS))
    assert rollout.wait_settled("1.0.0", timeout=180)["phase"] == "Healthy"

    rollout.apply(
        kind.at_version(
            service, kind_stage.app_image, "2.0.0", steps=STEPS, progress_deadline=30, **env
        )
    )
    done = rollout.wait_settled("2.0.0", timeout=150)

    assert done["phase"] == "RolledBack", done.get("message")
    assert done["stable"]["version"] == "1.0.0"
    abort = done["abort"]
    assert abort["reason"] == "ProgressDeadlineExceeded"
    assert re.search(r"0/\d+ pods ready after 30s", abort["message"]), abort["message"]
    assert re.search(state, abort["message"]), abort["message"]
