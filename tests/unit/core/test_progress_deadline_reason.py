"""A canary past its progress deadline is rolled back with a reason that says what its pods
were doing (issue 19: on real pods the reason only counted them)."""

from __future__ import annotations

from rollwise.core.reasons import Reason
from tests.unit.core.test_abort import rollout
from tests.unit.core.world import spec_from


def test_progress_deadline_reason_names_what_the_canary_pods_are_doing() -> None:
    spec = spec_from(strategy={"canary": {"steps": [{"setWeight": 50}]}})
    doing = "pod web-c1-a: container app CrashLoopBackOff (last exit code 1, 4 restarts)"
    world, _, v2 = rollout(spec, ready_cap=0, not_ready=doing)

    world.reach("RollingBack")

    abort = world.status.abort
    assert abort is not None
    assert abort.reason == Reason.PROGRESS_DEADLINE_EXCEEDED
    assert abort.message == f"canary {v2}: 0/2 pods ready after 120s at step 1: {doing}"
