"""Properties of decide() over random specs and random event sequences: pods ready or not, gate
values of every kind (NaN and no data included), random manual requests, new revisions, Jobs
that succeed, fail or vanish, and time advancing by random amounts."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollwise.api.service_status import HistoryEntry, Phase, ServiceStatus
from rollwise.core.model import (
    Action,
    CreateMigrationJob,
    EnsureServices,
    ManualRequest,
    Plan,
    ScaleReplicaSet,
    SetRouterWeight,
)
from rollwise.core.replicas import canary_replicas_for
from tests.unit.core.world import Pass, World, gate_from, released, spec_from

MIGRATION: dict[str, Any] = {
    "template": {"spec": {"containers": [{"name": "migrate", "image": "example/app:1.0.0"}]}}
}
ABORTING = (Phase.ROLLING_BACK, Phase.ROLLED_BACK)

weights = st.integers(min_value=0, max_value=100)
steps = st.one_of(
    st.builds(lambda w: {"setWeight": w}, weights),
    st.sampled_from([None, "0s", "10s", "45s"]).map(
        lambda d: {"pause": {"duration": d}} if d else {"pause": {}}
    ),
    st.just({"analysis": {"gates": [{"name": "error-rate"}]}}),
)
routers = st.sampled_from(
    [{"replicas": {}}, {"gatewayAPI": {"httpRoute": "payment"}}, {"nginx": {"ingress": "payment"}}]
)
# setMirror is valid with the gatewayAPI router only.
mirror_steps = st.builds(lambda m: {"setMirror": m}, weights)


@st.composite
def specs(draw: st.DrawFn, mirroring: bool = False) -> Any:
    """A random spec; `mirroring`: the gatewayAPI router, mirroring from the first step on."""
    router = {"gatewayAPI": {"httpRoute": "payment"}} if mirroring else draw(routers)
    kinds = st.one_of(steps, mirror_steps) if "gatewayAPI" in router else steps
    step_list = draw(st.lists(kinds, min_size=1, max_size=5))
    if mirroring:
        step_list.insert(0, {"setMirror": draw(st.integers(min_value=1, max_value=100))})
    canary: dict[str, Any] = {"steps": step_list, "trafficRouting": router}
    if draw(st.booleans()):
        starting = draw(st.integers(min_value=0, max_value=len(step_list) - 1))
        canary["analysis"] = {"gates": [{"name": "latency"}], "startingStep": starting}
    extra: dict[str, Any] = {}
    if draw(st.booleans()):
        extra["migration"] = MIGRATION
    return spec_from(
        replicas=draw(st.integers(min_value=1, max_value=6)),
        strategy={"canary": canary},
        abortScaleDownDelaySeconds=draw(st.sampled_from([0, 10, 30])),
        progressDeadlineSeconds=draw(st.sampled_from([30, 120])),
        **extra,
    )


gate_values = st.one_of(
    st.none(),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.floats(min_value=0.0, max_value=0.1),
)
changes = st.one_of(
    st.tuples(st.just("pods_ready"), st.booleans()),
    st.tuples(st.just("ready_cap"), st.one_of(st.none(), st.integers(0, 3))),
    st.tuples(st.just("gate_value"), gate_values),
    st.tuples(st.just("gate_error"), st.sampled_from([None, None, "connection refused"])),
    st.tuples(st.just("job_outcome"), st.sampled_from(["succeeded", "failed", "running"])),
    st.tuples(
        st.just("request"),
        st.tuples(st.sampled_from(list(Action)), st.sampled_from(["a", "b", "c", "d"])),
    ),
    st.tuples(st.just("release"), st.sampled_from(["1.0.0", "2.0.0", "3.0.0"])),
    st.tuples(st.just("drop_job"), st.none()),
    st.tuples(st.just("nothing"), st.none()),
)
change_lists = st.lists(
    st.tuples(changes, st.sampled_from([0.0, 1.0, 5.0, 10.0, 31.0, 60.0])),
    min_size=1,
    max_size=40,
)


@dataclass
class Story:
    """A random world and the changes made to it before each pass."""

    world: World
    changes: list[tuple[tuple[str, Any], float]]

    def play(self) -> Any:
        """Each change, then one pass; yields the world after every pass."""
        world = self.world
        for (what, value), advance in self.changes:
            if what == "request":
                action, request_id = value
                world.request = ManualRequest(id=request_id, action=action, by="tester")
            elif what == "release":
                world.spec = released(world.spec, value)
            elif what == "drop_job":
                world.jobs.clear()
            elif what != "nothing":
                setattr(world, what, value)
            world.step(advance)
            yield world


@st.composite
def stories(draw: st.DrawFn, jobs_deleted: bool = True, mirroring: bool = False) -> Story:
    """A random story; with `jobs_deleted`, someone may delete the migration Jobs; with
    `mirroring`, the spec mirrors from its first step on."""
    world = World(
        spec=draw(specs(mirroring)),
        gates={"error-rate": gate_from(), "latency": gate_from(count=0)},
    )
    story = draw(change_lists)
    if not jobs_deleted:
        story = [(change, advance) for change, advance in story if change[0] != "drop_job"]
    return Story(world=world, changes=story)


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- weights


@PROPERTY
@given(stories())
def test_weights_stay_within_zero_and_one_hundred(story: Story) -> None:
    for world in story.play():
        assert 0 <= world.status.canary_weight <= 100
        assert 0 <= world.status.mirror_percent <= 100
        assert all(0 <= a.weight <= 100 for a in world.actions(SetRouterWeight))
        assert all(0 <= a.mirror <= 100 for a in world.actions(SetRouterWeight))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=-5, max_value=105),
    st.integers(min_value=-5, max_value=105),
    st.integers(min_value=0, max_value=10000),
)
def test_canary_replicas_are_monotonic_in_weight_and_bounded(
    lower: int, higher: int, replicas: int
) -> None:
    lower, higher = sorted((lower, higher))

    small = canary_replicas_for(lower, replicas)
    large = canary_replicas_for(higher, replicas)

    assert 0 <= small <= large <= replicas
    assert (small == 0) == (lower <= 0 or replicas == 0)


# ----------------------------------------------------------------------------- aborts


def drains(pass_: Pass, canary: str) -> bool:
    """The plan takes traffic away from the canary that the world was still sending it."""
    seen = pass_.observed
    main_had_canary = seen.services is None or seen.services.main_revisions == ()
    router_had_canary = (seen.router_weight or 0) > 0 or (seen.router_mirror or 0) > 0
    return any(
        (
            isinstance(a, EnsureServices)
            and a.main_revisions
            and canary not in a.main_revisions
            and main_had_canary
        )
        or (
            isinstance(a, SetRouterWeight) and a.weight == 0 and a.mirror == 0 and router_had_canary
        )
        for a in pass_.plan.actions
    )


def lowers(pass_: Pass, canary: str) -> bool:
    observed = pass_.observed.replica_sets.get(canary)
    have = observed.replicas if observed else 0
    return any(
        isinstance(a, ScaleReplicaSet) and a.revision == canary and a.replicas < have
        for a in pass_.plan.actions
    )


@PROPERTY
@given(st.one_of(stories(), stories(mirroring=True)))
def test_an_abort_drains_traffic_before_it_scales_the_canary_down(story: Story) -> None:
    for world in story.play():
        last = world.passes[-1]
        aborting = last.before.phase in ABORTING or last.plan.status.phase in ABORTING
        if not aborting or last.before.canary is None:
            continue
        canary = last.before.canary.revision
        assert not (drains(last, canary) and lowers(last, canary)), last.plan.actions
        if last.before.canary_weight > 0:
            assert not lowers(last, canary), last.plan.actions


@PROPERTY
@given(stories(mirroring=True))
def test_no_copy_of_a_request_is_mirrored_to_a_canary_outside_its_steps(story: Story) -> None:
    """Aborting, rolled back, promoting or steady: the status and the router mirror nothing."""
    for world in story.play():
        status = world.status
        if status.phase not in (*ABORTING, Phase.PROMOTING, Phase.HEALTHY):
            continue
        assert status.mirror_percent == 0
        if world.spec.strategy.canary.traffic_routing.kind != "replicas":
            assert world.router_mirror == 0, world.passes[-1].plan.actions


# ----------------------------------------------------------------------------- migrations


@PROPERTY
@given(stories(jobs_deleted=False))
def test_a_migration_job_is_planned_at_most_once_per_revision_and_attempt(story: Story) -> None:
    for world in story.play():
        created = [(a.revision, a.job_name) for a in world.actions(CreateMigrationJob)]
        assert len(created) == len(set(created)), created


@PROPERTY
@given(stories())
def test_a_recorded_migration_job_deleted_by_someone_is_never_created_again(
    story: Story,
) -> None:
    for world in story.play():
        last = world.passes[-1]
        recorded = last.before.migration
        if recorded is None or recorded.phase != "Running":
            continue
        recreated = [
            a
            for a in last.plan.actions
            if isinstance(a, CreateMigrationJob) and a.job_name == recorded.job
        ]
        assert recreated == []


# ----------------------------------------------------------------------------- idempotence


@PROPERTY
@given(stories())
def test_deciding_again_on_its_own_output_changes_nothing(story: Story) -> None:
    """Idempotence: with nothing new observed (same instant, the plan's actions applied, no
    samples), deciding again plans no action, no Event and the same status. One transition is
    two passes on purpose: an abort records the drained traffic (weight 0) in status before the
    canary is scaled down, so when abortScaleDownDelaySeconds has already passed, the pass after
    the drain scales down; deciding after that follow-up is idle again. The drain is the pass
    that recorded scaleDownAt (at the abort, or later under the replicas router, once stable
    covers or progressDeadlineSeconds passed)."""
    for world in story.play():
        again = world.decide_again()
        drained_now = (
            world.status.phase is Phase.ROLLING_BACK
            and world.status.scale_down_at is not None
            and world.passes[-1].before.scale_down_at is None
        )
        if drained_now and (again.actions or again.status != world.status):
            world.apply(again)
            again = world.decide_again()

        assert again.actions == ()
        assert again.events == ()
        assert again.status == world.status


@PROPERTY
@given(stories())
def test_at_a_fixed_instant_decide_settles_without_repeating_itself(story: Story) -> None:
    for world in story.play():
        quiet = copy.deepcopy(world)
        last = quiet.passes[-1]
        previous, told = last.plan, added(last.before, last.plan)
        for _ in range(8):
            again = quiet.decide_again()
            if not again.actions and not again.events and again.status == quiet.status:
                break
            assert not set(again.actions) & set(previous.actions), "an applied action came back"
            assert not added(quiet.status, again) & told, "a transition was told twice"
            previous, told = again, added(quiet.status, again)
            quiet.apply(again)
        else:
            raise AssertionError(f"no fixed point after 8 passes at {world.now}: {again}")


def added(before: ServiceStatus, plan: Plan) -> set[HistoryEntry]:
    """The history entries a plan added to the status it started from."""
    return set(plan.status.history) - set(before.history)
