"""The ReleaseTrain room: order, concurrency, freeze windows, failure policies, idempotence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from rollwise.api.service_status import Phase
from rollwise.api.train import (
    FailurePolicy,
    MemberPhase,
    TrainPhase,
    TrainSpec,
    TrainStatus,
)
from rollwise.core.model import Action, ManualRequest
from rollwise.core.reasons import Reason
from rollwise.core.train.decide import decide_train
from rollwise.core.train.model import MemberObserved, TrainObserved, TrainPlan

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def spec(
    after: dict[str, list[str]] | None = None,
    *,
    names: tuple[str, ...] = ("a", "b", "c"),
    policy: FailurePolicy = FailurePolicy.HALT,
    max_concurrent: int = 1,
    windows: list[dict[str, Any]] | None = None,
) -> TrainSpec:
    after = {"b": ["a"], "c": ["b"]} if after is None else after
    return TrainSpec.model_validate(
        {
            "members": [{"service": n, "version": "2.0", "after": after.get(n, [])} for n in names],
            "maxConcurrent": max_concurrent,
            "onFailure": {"policy": policy.value},
            "freezeWindows": windows or [],
        }
    )


class World:
    """Member ProgressiveServices as the train observes them: each at `old` until told."""

    def __init__(self, names: tuple[str, ...] = ("a", "b", "c")) -> None:
        self.members = {
            n: MemberObserved(
                phase=Phase.HEALTHY,
                stable_revision=f"{n}-old",
                stable_version="1.0",
                target_revision=f"{n}-new",
                restore_revision=f"{n}-old",
            )
            for n in names
        }

    def set(self, name: str, **changes: Any) -> None:
        current = self.members[name]
        self.members[name] = MemberObserved(**{**current.__dict__, **changes})

    def promote(self, name: str) -> None:
        self.set(name, phase=Phase.HEALTHY, stable_revision=f"{name}-new", stable_version="2.0")

    def roll_out(self, name: str) -> None:
        self.set(name, phase=Phase.PROGRESSING)

    def fail(self, name: str) -> None:
        self.set(
            name, phase=Phase.ROLLED_BACK, failed_revision=f"{name}-new", message="gate failed"
        )

    def back(self, name: str) -> None:
        self.set(name, phase=Phase.HEALTHY, stable_revision=f"{name}-old", stable_version="1.0")

    def observed(self, request: ManualRequest | None = None, generation: int = 1) -> TrainObserved:
        return TrainObserved(
            namespace="shop",
            name="train",
            generation=generation,
            members=dict(self.members),
            request=request,
        )


def run(
    s: TrainSpec,
    status: TrainStatus,
    world: World,
    now: datetime = NOW,
    request: ManualRequest | None = None,
) -> TrainPlan:
    return decide_train(s, status, world.observed(request), now)


def phases(status: TrainStatus) -> dict[str, MemberPhase]:
    return {m.service: m.phase for m in status.members}


def reasons(plan: TrainPlan) -> list[str]:
    return [e.reason for e in plan.events]


def test_members_start_in_after_order_one_at_a_time() -> None:
    s, world = spec(), World()

    plan = run(s, TrainStatus(), world)

    assert plan.status.phase is TrainPhase.PROGRESSING
    assert phases(plan.status) == {
        "a": MemberPhase.PROGRESSING,
        "b": MemberPhase.WAITING,
        "c": MemberPhase.WAITING,
    }
    a = plan.status.member("a")
    assert a is not None and a.release is not None and a.release.version == "2.0"
    assert a.previous is None and a.previous_version == "1.0" and a.started_at == NOW
    assert reasons(plan) == [Reason.RELEASE_STARTED, Reason.MEMBER_STARTED]
    kstatus = {c.type: c.status for c in plan.status.conditions}
    assert (kstatus["Reconciling"], kstatus["Stalled"]) == ("True", "False")


def test_a_promoted_member_lets_the_next_start_and_all_promoted_succeeds() -> None:
    s, world = spec(), World()
    status = run(s, TrainStatus(), world).status
    order = []
    for name in ("a", "b", "c"):
        world.promote(name)
        plan = run(s, status, world, NOW + timedelta(minutes=len(order) + 1))
        status = plan.status
        order.append(name)
    assert plan.status.phase is TrainPhase.SUCCEEDED
    assert [m.promoted_index for m in status.members] == [1, 2, 3]
    starts = [m.started_at for m in status.members]
    assert starts == sorted(starts)
    assert Reason.TRAIN_SUCCEEDED in reasons(plan)


def test_a_member_does_not_count_as_promoted_until_its_service_is_healthy() -> None:
    s, world = spec(), World()
    status = run(s, TrainStatus(), world).status
    world.set("a", phase=Phase.PROMOTING, stable_revision="a-old")

    plan = run(s, status, world)

    assert phases(plan.status)["a"] is MemberPhase.PROGRESSING
    assert phases(plan.status)["b"] is MemberPhase.WAITING


def test_max_concurrent_bounds_members_in_flight() -> None:
    s, world = spec(after={}, max_concurrent=2), World()

    plan = run(s, TrainStatus(), world)

    assert list(phases(plan.status).values()).count(MemberPhase.PROGRESSING) == 2
    c = plan.status.member("c")
    assert c is not None and "maxConcurrent" in (c.message or "")


def test_a_member_already_at_the_version_is_unchanged_and_frees_its_dependents() -> None:
    s, world = spec(), World()
    world.promote("a")

    plan = run(s, TrainStatus(), world)

    assert phases(plan.status)["a"] is MemberPhase.UNCHANGED
    assert phases(plan.status)["b"] is MemberPhase.PROGRESSING


def test_a_member_that_did_not_join_waits_with_one_event() -> None:
    s, world = spec(), World()
    world.set("a", joined=False)

    first = run(s, TrainStatus(), world)
    second = run(s, first.status, world)

    assert phases(first.status)["a"] is MemberPhase.WAITING
    a = first.status.member("a")
    assert a is not None and "spec.releaseTrain: train" in (a.message or "")
    assert reasons(first).count(Reason.MEMBER_WAITING) == 1
    assert Reason.MEMBER_WAITING not in reasons(second)


def test_halt_policy_halts_the_rest_and_keeps_the_promoted() -> None:
    s, world = spec(policy=FailurePolicy.HALT), World()
    status = run(s, TrainStatus(), world).status
    world.promote("a")
    status = run(s, status, world).status
    world.fail("b")

    plan = run(s, status, world)

    assert plan.status.phase is TrainPhase.HALTED
    assert phases(plan.status) == {
        "a": MemberPhase.PROMOTED,
        "b": MemberPhase.FAILED,
        "c": MemberPhase.HALTED,
    }
    b = plan.status.member("b")
    assert b is not None and b.release is None  # declares what it runs again: its own spec
    assert plan.status.failure is not None and plan.status.failure.service == "b"
    assert Reason.MEMBER_FAILED in reasons(plan) and Reason.TRAIN_HALTED in reasons(plan)
    kstatus = {c.type: c.status for c in plan.status.conditions}
    assert (kstatus["Stalled"], kstatus["Reconciling"]) == ("True", "False")


def test_rollback_policy_rolls_promoted_members_back_last_promoted_first() -> None:
    s, world = (
        spec(after={"c": ["a", "b"]}, max_concurrent=2, policy=FailurePolicy.ROLLBACK_PROMOTED),
        World(),
    )
    status = run(s, TrainStatus(), world).status  # a and b start
    world.promote("b")
    status = run(s, status, world, NOW + timedelta(minutes=1)).status
    world.promote("a")
    status = run(s, status, world, NOW + timedelta(minutes=2)).status  # c starts
    assert phases(status)["c"] is MemberPhase.PROGRESSING
    world.fail("c")

    plan = run(s, status, world, NOW + timedelta(minutes=3))
    assert plan.status.phase is TrainPhase.ROLLING_BACK
    assert phases(plan.status)["a"] is MemberPhase.ROLLING_BACK  # promoted last
    assert phases(plan.status)["b"] is MemberPhase.PROMOTED
    a = plan.status.member("a")
    assert a is not None and a.release is None

    world.back("a")
    plan = run(s, plan.status, world, NOW + timedelta(minutes=4))
    assert phases(plan.status)["a"] is MemberPhase.ROLLED_BACK
    assert phases(plan.status)["b"] is MemberPhase.ROLLING_BACK

    world.back("b")
    plan = run(s, plan.status, world, NOW + timedelta(minutes=5))
    assert plan.status.phase is TrainPhase.FAILED
    assert phases(plan.status) == {
        "a": MemberPhase.ROLLED_BACK,
        "b": MemberPhase.ROLLED_BACK,
        "c": MemberPhase.FAILED,
    }
    assert Reason.TRAIN_FAILED in reasons(plan)


def test_unchanged_members_are_never_rolled_back() -> None:
    s, world = spec(policy=FailurePolicy.ROLLBACK_PROMOTED), World()
    world.promote("a")
    status = run(s, TrainStatus(), world).status
    world.fail("b")

    plan = run(s, status, world)

    assert phases(plan.status)["a"] is MemberPhase.UNCHANGED
    assert plan.status.phase is TrainPhase.FAILED


def test_a_failure_rolls_back_members_in_flight_under_halt_too() -> None:
    s, world = spec(after={}, max_concurrent=3), World()
    status = run(s, TrainStatus(), world).status
    world.fail("a")

    plan = run(s, status, world)

    assert phases(plan.status)["b"] is MemberPhase.ROLLING_BACK
    assert phases(plan.status)["c"] is MemberPhase.ROLLING_BACK
    assert plan.status.phase is TrainPhase.HALTED


def test_a_freeze_window_holds_new_starts_until_it_ends() -> None:
    window = {
        "start": (NOW - timedelta(hours=1)).isoformat(),
        "end": (NOW + timedelta(seconds=30)).isoformat(),
        "name": "release-freeze",
    }
    s, world = spec(windows=[window]), World()

    frozen = run(s, TrainStatus(), world)

    assert frozen.status.phase is TrainPhase.FROZEN
    assert frozen.status.frozen_until == NOW + timedelta(seconds=30)
    assert phases(frozen.status)["a"] is MemberPhase.WAITING
    assert frozen.requeue_after == pytest.approx(30)
    assert Reason.TRAIN_FROZEN in reasons(frozen)

    thawed = run(s, frozen.status, world, NOW + timedelta(seconds=30))
    assert thawed.status.phase is TrainPhase.PROGRESSING
    assert phases(thawed.status)["a"] is MemberPhase.PROGRESSING
    assert thawed.status.frozen_until is None


def test_a_freeze_does_not_hold_a_rollback() -> None:
    window = {
        "start": (NOW + timedelta(minutes=1)).isoformat(),
        "end": (NOW + timedelta(hours=1)).isoformat(),
    }
    s, world = spec(windows=[window], policy=FailurePolicy.ROLLBACK_PROMOTED), World()
    status = run(s, TrainStatus(), world).status
    world.promote("a")
    status = run(s, status, world).status
    world.fail("b")

    plan = run(s, status, world, NOW + timedelta(minutes=5))

    assert phases(plan.status)["a"] is MemberPhase.ROLLING_BACK


def test_abort_halts_and_rolls_back_what_is_in_flight() -> None:
    s, world = spec(), World()
    status = run(s, TrainStatus(), world).status
    request = ManualRequest(id="r1", action=Action.ABORT, by="alice")

    plan = run(s, status, world, request=request)

    assert plan.status.phase is TrainPhase.HALTED
    assert phases(plan.status)["a"] is MemberPhase.ROLLING_BACK
    assert plan.status.last_request is not None and plan.status.last_request.by == "alice"
    assert any(h.actor == "alice" for h in plan.status.history)
    again = run(s, plan.status, world, request=request)
    assert [e for e in again.events if e.reason == Reason.REQUEST_ACCEPTED] == []


def test_promote_is_forwarded_to_members_in_flight_once() -> None:
    s, world = spec(after={}, max_concurrent=2), World()
    status = run(s, TrainStatus(), world).status
    request = ManualRequest(id="p1", action=Action.PROMOTE, by="bob")

    plan = run(s, status, world, request=request)

    assert [(r.service, r.action) for r in plan.member_requests] == [
        ("a", Action.PROMOTE),
        ("b", Action.PROMOTE),
    ]
    assert len({r.id for r in plan.member_requests}) == 2
    assert run(s, plan.status, world, request=request).member_requests == ()


def test_retry_starts_a_halted_run_again() -> None:
    s, world = spec(), World()
    status = run(s, TrainStatus(), world).status
    world.fail("a")
    status = run(s, status, world).status
    assert status.phase is TrainPhase.HALTED
    world.back("a")

    plan = run(s, status, world, request=ManualRequest(id="x", action=Action.RETRY, by="c"))

    assert plan.status.phase is TrainPhase.PROGRESSING
    assert phases(plan.status)["a"] is MemberPhase.PROGRESSING


def test_a_new_generation_starts_a_new_run_and_supersedes_members_in_flight() -> None:
    s, world = spec(), World()
    status = run(s, TrainStatus(), world).status  # a in flight with release 2.0
    newer = spec().model_copy(
        update={"members": [m.model_copy(update={"version": "3.0"}) for m in s.members]}
    )

    plan = decide_train(newer, status, world.observed(generation=2), NOW)

    a = plan.status.member("a")
    assert a is not None and a.version == "3.0" and a.phase is MemberPhase.PROGRESSING
    assert a.previous is None  # its release before 2.0: its own spec
    assert plan.status.observed_generation == 2


@pytest.mark.parametrize("policy", list(FailurePolicy))
def test_decide_is_idempotent_on_its_own_output(policy: FailurePolicy) -> None:
    s, world = spec(policy=policy), World()
    status = TrainStatus()
    steps = [
        lambda: None,
        lambda: world.promote("a"),
        lambda: world.fail("b"),
        lambda: world.back("a"),
    ]
    for step in steps:
        step()
        plan = run(s, status, world)
        again = run(s, plan.status, world)
        assert again.status == plan.status
        assert again.events == ()
        status = plan.status


def test_a_cycle_or_an_unknown_after_is_rejected() -> None:
    with pytest.raises(ValidationError, match="cycle: a after b after a"):
        spec(after={"a": ["b"], "b": ["a"]}, names=("a", "b"))
    with pytest.raises(ValidationError, match="not a member"):
        spec(after={"a": ["zz"]}, names=("a",))
    with pytest.raises(ValidationError, match="listed twice"):
        TrainSpec.model_validate(
            {"members": [{"service": "a", "version": "1"}, {"service": "a", "version": "2"}]}
        )
