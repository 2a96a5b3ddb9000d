"""The fleet room (core/fleet.py): waves, maxParallel, soak, approval, halt, rollback in reverse,
unreachable members, and idempotence after a restart. Members are plain data here: a tiny
stand-in for each member's rollwise turns a patched spec into a Healthy (or RolledBack) status."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwise.api.fleet import (
    ContainerPatch,
    EnvVar,
    FleetPhase,
    FleetRolloutSpec,
    FleetRolloutStatus,
    WavePhase,
)
from rollwise.api.fleet import (
    FleetMemberPhase as MemberPhase,
)
from rollwise.core.fleet.decide import decide_fleet
from rollwise.core.fleet.model import FleetMemberSpec as MemberSpec
from rollwise.core.fleet.model import FleetPlan, MemberObservation, PatchMember
from rollwise.core.fleet.waves import merged_containers, resolve_waves
from rollwise.core.model import Action, ManualRequest
from rollwise.core.reasons import FleetConditionType as ConditionType
from rollwise.core.reasons import FleetReason as Reason

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def fleet_spec(**overrides: Any) -> FleetRolloutSpec:
    raw: dict[str, Any] = {
        "target": {"namespace": "shop", "service": "payment"},
        "version": "2.0.0",
        "clusters": [
            {"name": "eu-1", "region": "eu", "kubeconfigSecretRef": {"name": "eu-1"}},
            {"name": "us-1", "region": "us", "kubeconfigSecretRef": {"name": "us-1"}},
            {"name": "us-2", "region": "us", "kubeconfigSecretRef": {"name": "us-2"}},
            {"name": "ap-1", "region": "ap", "kubeconfigSecretRef": {"name": "ap-1"}},
        ],
        "waves": [
            {"name": "canary", "clusters": ["eu-1"]},
            {"name": "us", "selector": {"region": "us"}},
            {"name": "rest"},
        ],
    }
    raw.update(overrides)
    return FleetRolloutSpec.model_validate(raw)


@dataclass
class Member:
    """A member cluster's ProgressiveService and a one-step stand-in for its rollwise."""

    name: str
    version: str | None = "1.0.0"
    containers: tuple[dict[str, Any], ...] = ({"name": "app", "image": "shop/payment:1.0.0"},)
    generation: int = 1
    observed_generation: int = 1
    phase: str = "Healthy"
    stable: str = "1.0.0"
    resource_version: int = 1
    bad_versions: set[str] = field(default_factory=set)  # a rollout of these is rolled back
    stuck_versions: set[str] = field(default_factory=set)  # a rollout of these never ends
    reachable: bool = True
    patches: list[PatchMember] = field(default_factory=list)

    def observe(self) -> MemberObservation:
        if not self.reachable:
            return MemberObservation(self.name, reachable=False, error="connection refused")
        return MemberObservation(
            cluster=self.name,
            reachable=True,
            found=True,
            spec=MemberSpec(self.version, self.containers),
            resource_version=str(self.resource_version),
            generation=self.generation,
            observed_generation=self.observed_generation,
            phase=self.phase,
            stable_version=self.stable,
            message="GateFailed: error-rate 0.5 > max 0.05" if self.phase == "RolledBack" else None,
        )

    def patch(self, patch: PatchMember) -> None:
        assert self.reachable
        assert patch.resource_version == str(self.resource_version)
        self.patches.append(patch)
        containers = patch.containers or self.containers
        if (patch.version, json.dumps(containers)) != (self.version, json.dumps(self.containers)):
            self.generation += 1  # the apiserver bumps it only for a real change
            self.resource_version += 1
        self.version, self.containers = patch.version, tuple(dict(c) for c in containers)

    def run_rollwise(self) -> None:
        """The member's own rollout, all at once."""
        if self.observed_generation == self.generation or self.version in self.stuck_versions:
            return
        self.observed_generation = self.generation
        version = self.version or "1.0.0"
        if version in self.bad_versions:
            self.phase = "RolledBack"
        else:
            self.phase, self.stable = "Healthy", version
        self.resource_version += 1


class World:
    def __init__(self, spec: FleetRolloutSpec, **members: Member) -> None:
        self.spec = spec
        self.members = {c.name: members.get(c.name, Member(c.name)) for c in spec.clusters}
        self.status = FleetRolloutStatus()
        self.now = T0
        self.plans: list[FleetPlan] = []

    def step(self, request: ManualRequest | None = None, run_members: bool = True) -> FleetPlan:
        observed = {n: m.observe() for n, m in self.members.items()}
        plan = decide_fleet(
            self.spec, self.status, observed, self.now, generation=1, request=request, poll_s=2
        )
        self.status = plan.status
        for patch in plan.patches:
            self.members[patch.cluster].patch(patch)
        if run_members:
            for member in self.members.values():
                if member.reachable:
                    member.run_rollwise()
        self.plans.append(plan)
        self.now += timedelta(seconds=1)
        return plan

    def run(self, passes: int = 40, until: set[FleetPhase] | None = None) -> FleetRolloutStatus:
        done = until or {FleetPhase.SUCCEEDED, FleetPhase.FAILED, FleetPhase.ROLLED_BACK}
        for _ in range(passes):
            self.step()
            if self.status.phase in done:
                break
        return self.status

    def member_phase(self, name: str) -> MemberPhase:
        return next(m.phase for w in self.status.waves for m in w.clusters if m.name == name)

    def patched_order(self) -> list[str]:
        return [p.cluster for plan in self.plans for p in plan.patches if not p.rollback]

    def reasons(self) -> list[str]:
        return [e.reason for plan in self.plans for e in plan.events]


# ----------------------------------------------------------------------------- layout


def test_waves_resolve_by_name_then_selector_then_the_rest() -> None:
    layout = resolve_waves(fleet_spec())
    assert [(w.name, names) for w, names in layout] == [
        ("canary", ["eu-1"]),
        ("us", ["us-1", "us-2"]),
        ("rest", ["ap-1"]),
    ]


def test_a_cluster_in_no_wave_makes_the_fleet_invalid() -> None:
    spec = fleet_spec(waves=[{"name": "canary", "clusters": ["eu-1"]}])
    plan = decide_fleet(spec, FleetRolloutStatus(), {}, T0, generation=3)
    assert plan.status.phase is FleetPhase.INVALID
    assert "us-1, us-2, ap-1 is in no wave" in (plan.status.message or "")
    assert plan.status.observed_generation == 3
    assert [e.reason for e in plan.events] == [Reason.INVALID]
    # Told once: the same problem on the next pass posts no second Event.
    again = decide_fleet(spec, plan.status, {}, T0, generation=3)
    assert again.events == ()


def test_a_wave_that_gets_no_cluster_is_invalid() -> None:
    spec = fleet_spec(waves=[{"name": "all"}, {"name": "eu", "selector": {"region": "eu"}}])
    assert decide_fleet(spec, FleetRolloutStatus(), {}, T0).status.phase is FleetPhase.INVALID


def test_spec_rejects_unknown_cluster_names_and_clusters_with_selector() -> None:
    with pytest.raises(ValueError, match="unknown cluster mars"):
        fleet_spec(waves=[{"name": "w", "clusters": ["mars"]}])
    with pytest.raises(ValueError, match="not both"):
        fleet_spec(waves=[{"name": "w", "clusters": ["eu-1"], "selector": {"region": "eu"}}])


# ----------------------------------------------------------------------------- waves


def kstatus_conditions(status: FleetRolloutStatus) -> dict[str, str]:
    """What kstatus (Flux) reads: Reconciling -> InProgress, Stalled -> Failed."""
    return {c.type: c.status for c in status.conditions if c.type in ("Reconciling", "Stalled")}


def test_three_waves_complete_in_order_and_each_member_is_patched_once() -> None:
    world = World(fleet_spec())
    status = world.run()
    assert status.phase is FleetPhase.SUCCEEDED
    assert [w.phase for w in status.waves] == [WavePhase.SUCCEEDED] * 3
    assert world.patched_order() == ["eu-1", "us-1", "us-2", "ap-1"]
    for member in world.members.values():
        assert (member.stable, member.version, len(member.patches)) == ("2.0.0", "2.0.0", 1)
    assert all(
        m.version == "2.0.0" and m.previous_version == "1.0.0"
        for w in status.waves
        for m in w.clusters
    )
    ready = next(c for c in status.conditions if c.type == ConditionType.READY)
    assert ready.status == "True"
    assert kstatus_conditions(status) == {"Reconciling": "False", "Stalled": "False"}


def test_no_member_of_a_later_wave_is_patched_before_the_earlier_wave_succeeded() -> None:
    world = World(fleet_spec())
    while world.status.phase is not FleetPhase.SUCCEEDED:
        plan = world.step()
        for patch in plan.patches:
            wave_of = {m.name: i for i, w in enumerate(world.status.waves) for m in w.clusters}
            earlier = [w for i, w in enumerate(world.status.waves) if i < wave_of[patch.cluster]]
            assert all(w.phase is WavePhase.SUCCEEDED for w in earlier)


def test_previous_spec_is_recorded_in_a_pass_that_patches_nothing() -> None:
    world = World(fleet_spec())
    first = world.step()
    assert first.patches == ()
    member = world.status.waves[0].clusters[0]
    assert member.phase is MemberPhase.PATCHING
    assert member.previous is not None and member.previous.version == "1.0.0"
    assert first.requeue_after == 0
    second = world.step()
    assert [p.cluster for p in second.patches] == ["eu-1"]


def test_max_parallel_bounds_the_clusters_in_flight() -> None:
    spec = fleet_spec(waves=[{"name": "all", "maxParallel": 2}])
    slow = {n: Member(n) for n in ("eu-1", "us-1", "us-2", "ap-1")}
    world = World(spec, **slow)
    for _ in range(30):
        world.step(run_members=False)  # members never finish: everything stays in flight
    in_flight = [
        m
        for m in world.status.waves[0].clusters
        if m.phase in (MemberPhase.PATCHING, MemberPhase.PROGRESSING)
    ]
    assert len(in_flight) == 2
    assert world.patched_order() == ["eu-1", "us-1"]
    for member in world.members.values():
        member.run_rollwise()
    assert world.run().phase is FleetPhase.SUCCEEDED


def test_a_soak_holds_the_next_wave_until_it_has_passed() -> None:
    spec = fleet_spec(
        waves=[{"name": "canary", "clusters": ["eu-1"], "soak": "30s"}, {"name": "rest"}]
    )
    world = World(spec)
    world.run(until={FleetPhase.SOAKING})
    soak_until = world.status.waves[0].soak_until
    assert soak_until == world.now - timedelta(seconds=1) + timedelta(seconds=30)
    assert 0 < (world.plans[-1].requeue_after or 0) <= 2
    while world.now < soak_until:
        world.step()
        assert "us-1" not in world.patched_order()
    assert world.run().phase is FleetPhase.SUCCEEDED


def test_a_member_that_loses_the_version_during_the_soak_fails_the_wave() -> None:
    spec = fleet_spec(
        waves=[{"name": "canary", "clusters": ["eu-1"], "soak": "1m"}, {"name": "rest"}]
    )
    world = World(spec)
    world.run(until={FleetPhase.SOAKING})
    eu = world.members["eu-1"]
    eu.phase, eu.stable = "Degraded", "2.0.0"
    status = world.run()
    assert status.phase is FleetPhase.FAILED
    assert world.patched_order() == ["eu-1"]
    assert "left Healthy 2.0.0 during the soak" in (status.message or "")


def test_an_approval_wave_waits_for_promote_and_records_who() -> None:
    spec = fleet_spec(
        waves=[{"name": "canary", "clusters": ["eu-1"]}, {"name": "rest", "approval": True}]
    )
    world = World(spec)
    status = world.run(until={FleetPhase.WAITING_FOR_APPROVAL})
    assert status.waves[1].phase is WavePhase.WAITING_FOR_APPROVAL
    for _ in range(5):
        world.step()
    assert world.patched_order() == ["eu-1"]
    waiting = next(
        c for c in world.status.conditions if c.type == ConditionType.WAITING_FOR_APPROVAL
    )
    assert waiting.status == "True"
    world.step(ManualRequest(id="r1", action=Action.PROMOTE, by="alice"))
    assert world.status.waves[1].approved_by == "alice"
    assert world.status.last_request is not None and world.status.last_request.id == "r1"
    assert world.run().phase is FleetPhase.SUCCEEDED
    approved = [h for h in world.status.history if h.event == Reason.APPROVED]
    assert approved and approved[0].actor == "alice"


def test_a_promote_with_nothing_to_approve_is_ignored_once() -> None:
    world = World(fleet_spec())
    plan = world.step(ManualRequest(id="r1", action=Action.PROMOTE, by="bob"))
    assert Reason.REQUEST_IGNORED in [e.reason for e in plan.events]
    again = world.step(ManualRequest(id="r1", action=Action.PROMOTE, by="bob"))
    assert Reason.REQUEST_IGNORED not in [e.reason for e in again.events]


# ----------------------------------------------------------------------------- failures


def test_a_failed_wave_halts_and_later_waves_never_get_the_version() -> None:
    world = World(fleet_spec(), **{"eu-1": Member("eu-1", bad_versions={"2.0.0"})})
    status = world.run()
    assert status.phase is FleetPhase.FAILED
    assert [w.phase for w in status.waves] == [WavePhase.FAILED, WavePhase.HALTED, WavePhase.HALTED]
    assert world.patched_order() == ["eu-1"]
    assert world.member_phase("eu-1") is MemberPhase.FAILED
    assert {world.member_phase(n) for n in ("us-1", "us-2", "ap-1")} == {MemberPhase.SKIPPED}
    assert "GateFailed" in (status.message or "")
    assert kstatus_conditions(status) == {"Reconciling": "False", "Stalled": "True"}
    for _ in range(5):  # halted stays halted: nothing more is patched
        assert world.step().patches == ()


def test_rollback_policy_restores_promoted_clusters_latest_wave_first() -> None:
    spec = fleet_spec(onFailure="RollbackPromoted")
    members = {"ap-1": Member("ap-1", bad_versions={"2.0.0"})}
    world = World(spec, **members)
    status = world.run()
    assert status.phase is FleetPhase.ROLLED_BACK
    rollbacks = [p.cluster for plan in world.plans for p in plan.patches if p.rollback]
    # The latest wave (rest: ap-1, failed) first, then us, then the canary.
    assert rollbacks.index("ap-1") < rollbacks.index("us-1") < rollbacks.index("eu-1")
    for member in world.members.values():
        assert (member.version, member.stable, member.phase) == ("1.0.0", "1.0.0", "Healthy")
    assert [w.phase for w in status.waves] == [WavePhase.ROLLED_BACK] * 3


def test_an_earlier_wave_is_not_rolled_back_before_the_later_one_is() -> None:
    spec = fleet_spec(
        onFailure="RollbackPromoted",
        waves=[{"name": "canary", "clusters": ["eu-1"]}, {"name": "rest"}],
    )
    slow_back = Member("us-2", stuck_versions={"1.0.0"})  # its rollback never finishes
    world = World(spec, **{"us-1": Member("us-1", bad_versions={"2.0.0"}), "us-2": slow_back})
    for _ in range(20):
        world.step()
    assert world.status.phase is FleetPhase.ROLLING_BACK
    assert "eu-1" not in [p.cluster for plan in world.plans for p in plan.patches if p.rollback]


def test_abort_stops_the_fleet_with_the_actor() -> None:
    world = World(fleet_spec())
    world.run(until={FleetPhase.PROGRESSING})
    world.step(ManualRequest(id="a1", action=Action.ABORT, by="carol"))
    status = world.run()
    assert status.phase is FleetPhase.FAILED
    assert status.message == "aborted by carol"
    assert any(h.actor == "carol" and h.event == Reason.HALTED for h in status.history)


# ----------------------------------------------------------------------------- members


def test_an_unreachable_member_makes_the_fleet_wait_with_a_condition_naming_it() -> None:
    world = World(fleet_spec())
    world.run(until={FleetPhase.SOAKING, FleetPhase.PROGRESSING})
    world.members["us-2"].reachable = False
    for _ in range(10):
        world.step()
    status = world.status
    assert status.phase is FleetPhase.PROGRESSING
    condition = next(c for c in status.conditions if c.type == ConditionType.MEMBER_UNREACHABLE)
    assert condition.status == "True" and "us-2" in condition.message
    assert "ap-1" not in world.patched_order()
    assert world.reasons().count(Reason.MEMBER_UNREACHABLE) == 1
    world.members["us-2"].reachable = True
    assert world.run().phase is FleetPhase.SUCCEEDED
    condition = next(
        c for c in world.status.conditions if c.type == ConditionType.MEMBER_UNREACHABLE
    )
    assert condition.status == "False"


def test_a_member_without_the_service_fails_its_wave() -> None:
    world = World(fleet_spec())
    missing = MemberObservation(
        "eu-1", reachable=True, found=False, error="ProgressiveService shop/payment not found"
    )
    world.members["eu-1"].observe = lambda: missing  # type: ignore[method-assign]
    status = world.run()
    assert status.phase is FleetPhase.FAILED
    assert "not found" in (status.message or "")


def test_a_member_already_at_the_version_is_not_patched() -> None:
    at = Member("eu-1", version="2.0.0", stable="2.0.0")
    world = World(fleet_spec(), **{"eu-1": at})
    assert world.run().phase is FleetPhase.SUCCEEDED
    assert at.patches == []


# ----------------------------------------------------------------------------- restarts


def test_a_restarted_hub_that_finds_the_patch_landed_does_not_patch_again() -> None:
    world = World(fleet_spec())
    world.step()  # Patching, previous recorded
    plan = world.step(run_members=False)  # the patch is written...
    assert plan.patches
    # ...and the hub dies before writing anything else: the next hub starts from the status
    # of the pass that decided the patch (written before it) and re-observes.
    again = world.step(run_members=False)
    assert again.patches == ()
    assert world.member_phase("eu-1") is MemberPhase.PROGRESSING
    assert len(world.members["eu-1"].patches) == 1


@settings(max_examples=60, deadline=None)
@given(crash_after=st.integers(min_value=0, max_value=25), bad=st.booleans())
def test_deciding_again_from_any_stored_status_never_changes_a_member_twice(
    crash_after: int, bad: bool
) -> None:
    """A hub restarted at any pass (status kept, memory lost) repeats no member change."""
    spec = fleet_spec(onFailure="RollbackPromoted")
    members = {"us-2": Member("us-2", bad_versions={"2.0.0"})} if bad else {}
    world = World(spec, **members)
    for _ in range(crash_after):
        world.step()
    world.status = FleetRolloutStatus.model_validate(world.status.to_wire())  # the stored copy
    world.run(passes=80)
    for member in world.members.values():
        generations = member.generation - 1
        assert generations <= 2  # the version once, and at most once back
        assert len({json.dumps(p.body()["spec"]) for p in member.patches}) == len(member.patches)


def test_a_new_version_starts_the_waves_afresh() -> None:
    world = World(fleet_spec())
    world.run()
    world.spec = fleet_spec(version="3.0.0")
    world.step()
    assert world.status.version == "3.0.0"
    assert world.status.phase is FleetPhase.PROGRESSING
    assert world.status.waves[1].phase is WavePhase.PENDING
    assert world.run().phase is FleetPhase.SUCCEEDED
    assert all(m.stable == "3.0.0" for m in world.members.values())


# ----------------------------------------------------------------------------- patches


def test_container_patches_merge_image_and_env_by_name() -> None:
    current = (
        {
            "name": "app",
            "image": "shop/payment:1",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 8080}],
        },
        {"name": "sidecar", "image": "proxy:1"},
    )
    patches = [
        ContainerPatch(
            name="app",
            image="shop/payment:2",
            env=[EnvVar(name="B", value="3"), EnvVar(name="C", value="4")],
        )
    ]
    merged = merged_containers(current, patches)
    assert merged[0]["image"] == "shop/payment:2"
    assert merged[0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]
    assert merged[0]["ports"] == [{"containerPort": 8080}]
    assert merged[1] == current[1]
    with pytest.raises(ValueError, match="no container db"):
        merged_containers(current, [ContainerPatch(name="db", image="x")])


def test_the_patch_carries_the_resource_version_and_removes_an_absent_version() -> None:
    patch = PatchMember("eu-1", None, ({"name": "app", "image": "a:1"},), "42", rollback=True)
    assert patch.body() == {
        "spec": {
            "version": None,
            "template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}},
        },
        "metadata": {"resourceVersion": "42"},
    }


def test_a_rollback_restores_the_exact_previous_containers() -> None:
    spec = fleet_spec(
        onFailure="RollbackPromoted",
        containers=[
            {
                "name": "app",
                "image": "shop/payment:2.0.0",
                "env": [{"name": "SIM_ERROR_RATE", "value": "0.5"}],
            }
        ],
        waves=[{"name": "canary", "clusters": ["eu-1"]}, {"name": "rest"}],
    )
    before = Member("eu-1").containers
    world = World(spec, **{"us-1": Member("us-1", bad_versions={"2.0.0"})})
    world.run()
    assert world.status.phase is FleetPhase.ROLLED_BACK
    assert world.members["eu-1"].containers == before
    assert world.members["eu-1"].version == "1.0.0"


def test_effective_version_falls_back_to_the_image_tag() -> None:
    assert (
        MemberSpec(None, ({"name": "a", "image": "reg:5000/x/y:1.2"},)).effective_version == "1.2"
    )
    assert MemberSpec(None, ({"name": "a", "image": "x"},)).effective_version == "latest"
    assert replace(MemberSpec(None, ()), version="3").effective_version == "3"


def test_a_member_spec_changed_outside_the_fleet_fails_it_instead_of_being_fought() -> None:
    world = World(fleet_spec())
    world.step()
    world.step(run_members=False)  # patched
    world.step(run_members=False)  # Progressing
    eu = world.members["eu-1"]
    eu.version, eu.generation = "1.5.0", eu.generation + 1  # someone applied another version
    status = world.run()
    assert status.phase is FleetPhase.FAILED
    assert world.member_phase("eu-1") is MemberPhase.FAILED
    assert "no longer asks for 2.0.0" in (status.message or "")
    assert len(eu.patches) == 1 and eu.version == "1.5.0"
