"""Scaling: bounded moves of pods between revisions (maxSurge/maxUnavailable), and a replica
count that changes mid-rollout (an HPA through the scale subresource)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import Phase
from rollwise.core.replicas import Side, move_bounds, next_sizes, resolve_bound
from rollwise.core.revision import revision_of
from tests.unit.core.world import World, healthy_world, released, spec_from


def canary(steps: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {"canary": {"steps": steps, **options}}


def scaled(spec: ServiceSpec, replicas: int) -> ServiceSpec:
    """The spec after an autoscaler wrote spec.replicas through the scale subresource."""
    return spec.model_copy(update={"replicas": replicas})


def asked(world: World) -> int:
    return sum(rs.replicas for rs in world.replica_sets.values())


def ready(world: World) -> int:
    return sum(rs.ready_replicas for rs in world.replica_sets.values())


def serving(world: World) -> int:
    """Ready pods behind the Service `<name>`: every pod of the service, or only stable's."""
    services = world.services
    assert services is not None
    if not services.main_revisions:
        return ready(world)
    return sum(
        rs.ready_replicas
        for revision, rs in world.replica_sets.items()
        if revision in services.main_revisions
    )


def sizes(world: World) -> tuple[int, int]:
    """(canary, stable) as status reports them."""
    status = world.status
    assert status.canary is not None and status.stable is not None
    return status.canary.replicas, status.stable.replicas


# ----------------------------------------------------------------------------- arithmetic


def test_bounds_round_surge_up_and_unavailable_down_as_deployments_do() -> None:
    assert resolve_bound("25%", 10, round_up=True) == 3
    assert resolve_bound("25%", 10, round_up=False) == 2
    assert resolve_bound(2, 10, round_up=True) == 2
    assert move_bounds("25%", "25%", 2) == (1, 0)


def test_bounds_that_both_round_to_zero_let_one_pod_be_missing() -> None:
    assert move_bounds("10%", "10%", 1) == (1, 0)
    assert move_bounds(0, "20%", 4) == (0, 1)


@settings(max_examples=400, deadline=None)
@given(
    replicas=st.integers(1, 20),
    surge=st.integers(0, 5),
    unavailable=st.integers(0, 5),
    target=st.integers(0, 20),
    grow_share=st.floats(0, 1),
    shrink_have=st.integers(0, 25),
    grow_ready_share=st.floats(0, 1),
    shrink_ready_share=st.floats(0, 1),
)
def test_a_move_never_exceeds_the_surge_nor_loses_ready_pods_below_the_bound(
    replicas: int,
    surge: int,
    unavailable: int,
    target: int,
    grow_share: float,
    shrink_have: int,
    grow_ready_share: float,
    shrink_ready_share: float,
) -> None:
    if surge == 0 and unavailable == 0:
        unavailable = 1
    grow_want = min(target, replicas)
    grow_have = int(grow_want * grow_share)  # the growing side is below its target
    grow = Side(grow_have, int(grow_have * grow_ready_share), grow_want)
    shrink = Side(shrink_have, int(shrink_have * shrink_ready_share), replicas - grow_want)

    grow_to, shrink_to = next_sizes(grow, shrink, replicas, surge, unavailable)

    ready_before = grow.ready + shrink.ready
    ready_after = grow.ready + min(shrink.ready, shrink_to)
    assert ready_after >= min(ready_before, replicas - unavailable)
    assert grow_to + shrink_to <= max(replicas + surge, grow.have + shrink.have)
    assert grow.have <= grow_to <= grow.want
    assert min(shrink.have, shrink.want) <= shrink_to <= max(shrink.have, shrink.want)


@settings(max_examples=200, deadline=None)
@given(
    replicas=st.integers(1, 30),
    surge=st.integers(0, 4),
    unavailable=st.integers(0, 4),
    start=st.integers(0, 30),
    target=st.integers(0, 30),
)
def test_moves_reach_the_target_when_pods_become_ready(
    replicas: int, surge: int, unavailable: int, start: int, target: int
) -> None:
    if surge == 0 and unavailable == 0:
        surge = 1
    start, target = min(start, replicas), min(target, replicas)
    grow = Side(start, start, target)
    shrink = Side(replicas - start, replicas - start, replicas - target)
    for _ in range(4 * replicas + 4):
        if (grow.have, shrink.have) == (grow.want, shrink.want):
            break
        grow_to, shrink_to = next_sizes(grow, shrink, replicas, surge, unavailable)
        # Pods become ready before the next move; a scale-down removes pods at once.
        grow = Side(grow_to, grow_to, grow.want)
        shrink = Side(shrink_to, shrink_to, shrink.want)

    assert (grow.have, shrink.have) == (target, replicas - target)


# ----------------------------------------------------------------------------- rollouts


def test_a_weight_step_moves_pods_within_max_surge_and_max_unavailable() -> None:
    spec = spec_from(
        replicas=10,
        strategy=canary([{"setWeight": 50}, {"pause": {}}], maxSurge=1, maxUnavailable=0),
    )
    world = healthy_world(spec)
    world.spec = released(world.spec, "2.0.0")

    low, peak, passes = ready(world), asked(world), 0
    while world.status.phase is not Phase.PAUSED and passes < 40:
        world.step(5)
        low, peak, passes = min(low, ready(world)), max(peak, asked(world)), passes + 1

    assert world.status.phase is Phase.PAUSED
    assert sizes(world) == (5, 5)
    assert peak <= 11
    assert low >= 10
    assert passes > 5  # one pod at a time, not all at once


def test_abort_at_full_weight_never_drops_ready_pods_below_replicas() -> None:
    spec = spec_from(
        replicas=6,
        strategy=canary(
            [{"setWeight": 100}, {"analysis": {"gates": [{"name": "error-rate"}]}}],
            maxSurge=2,
            maxUnavailable=0,
        ),
    )
    world = healthy_world(spec)
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: w.status.current_step_index == 1, passes=40)
    assert sizes(world) == (6, 0)
    world.gate_value = 0.9  # the gate fails: abort

    low, peak, behind = ready(world), asked(world), serving(world)
    for _ in range(40):
        world.step(5)
        low, peak = min(low, ready(world)), max(peak, asked(world))
        behind = min(behind, serving(world))
        if world.status.phase is Phase.ROLLED_BACK and sizes(world) == (0, 6):
            break

    assert world.status.phase is Phase.ROLLED_BACK
    assert sizes(world) == (0, 6)
    assert low >= 6
    assert peak <= 8
    # The Service was never left with fewer pods than the surge could bring back first.
    assert behind >= 2


def full_weight_abort(**options: Any) -> World:
    """Canary at 100% of 6 pods under the replicas router, its gate failing right now."""
    spec = spec_from(
        replicas=6,
        abortScaleDownDelaySeconds=10,
        strategy=canary(
            [{"setWeight": 100}, {"analysis": {"gates": [{"name": "error-rate"}]}}], **options
        ),
    )
    world = healthy_world(spec)
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: w.status.current_step_index == 1, passes=40)
    assert sizes(world) == (6, 0)
    world.gate_value = 0.9
    return world


def test_abort_under_the_replicas_router_drains_once_stable_pods_are_ready() -> None:
    world = full_weight_abort(maxSurge=2, maxUnavailable=0)
    world.pods_ready = False  # stable's replacements are starting
    world.until(lambda w: w.status.phase is Phase.ROLLING_BACK)
    world.step(5)

    # The canary still serves: draining now would leave the Service with no ready pod.
    assert world.status.canary_weight == 100 and world.status.scale_down_at is None
    assert world.services is not None and world.services.main_revisions == ()
    assert sizes(world) == (6, 2)
    assert "until 2 stable pods are ready (0 now)" in world.status.message
    assert "TrafficDrained" not in world.events()

    world.pods_ready = True
    world.step(1)
    assert world.status.canary_weight == 0 and world.status.scale_down_at is not None
    assert world.services is not None and world.services.main_revisions != ()
    assert world.events().count("TrafficDrained") == 1
    assert serving(world) == 2
    world.until(lambda w: w.status.phase is Phase.ROLLED_BACK and sizes(w) == (0, 6))


def test_abort_drains_anyway_once_the_progress_deadline_passes() -> None:
    world = full_weight_abort(maxSurge=2, maxUnavailable=0)
    world.pods_ready = False
    world.until(lambda w: w.status.phase is Phase.ROLLING_BACK)
    deadline = world.spec.progress_deadline_seconds
    world.step(deadline / 2)
    assert world.status.canary_weight == 100
    world.step(deadline)
    assert world.status.canary_weight == 0
    assert any("0 of 2 pods ready" in m for m in world.messages("TrafficDrained"))


def test_a_traffic_router_drains_at_once_on_abort() -> None:
    spec = spec_from(
        replicas=4,
        strategy=canary(
            [{"setWeight": 100}, {"analysis": {"gates": [{"name": "error-rate"}]}}],
            trafficRouting={"gatewayAPI": {"httpRoute": "payment"}},
        ),
    )
    world = healthy_world(spec)
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: w.status.current_step_index == 1, passes=40)
    world.gate_value = 0.9
    world.pods_ready = False
    world.until(lambda w: w.status.phase is Phase.ROLLING_BACK)
    assert world.router_weight == 0 and world.status.canary_weight == 0


def test_an_autoscaler_scaling_a_paused_canary_recomputes_the_split() -> None:
    spec = spec_from(replicas=2, strategy=canary([{"setWeight": 25}, {"pause": {}}]))
    world = healthy_world(spec)
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: w.status.phase is Phase.PAUSED)

    world.spec = scaled(world.spec, 8)
    world.generation += 1
    world.until(lambda w: sizes(w) == (2, 6) and ready(w) == 8)

    assert world.status.phase is Phase.PAUSED
    assert world.status.replicas == 8
    world.spec = scaled(world.spec, 4)
    world.generation += 1
    world.until(lambda w: sizes(w) == (1, 3) and asked(w) == 4)
    assert world.status.replicas == 4
    assert world.status.phase is Phase.PAUSED


def test_scaling_while_promoting_promotes_at_the_new_count() -> None:
    spec = spec_from(replicas=4, strategy=canary([{"setWeight": 50}]))
    world = healthy_world(spec)
    v2 = revision_of(released(world.spec, "2.0.0"))
    world.spec = released(world.spec, "2.0.0")
    world.ready_cap = 3  # promotion cannot finish: 3 of 4 canary pods ready
    world.until(lambda w: w.status.phase is Phase.PROMOTING)

    world.spec = scaled(world.spec, 6)
    world.generation += 1
    world.ready_cap = None
    world.reach("Healthy")

    assert world.status.stable is not None and world.status.stable.revision == v2
    assert world.replica_sets[v2].replicas == 6
    assert list(world.replica_sets) == [v2]


def test_scaling_while_rolling_back_restores_stable_at_the_new_count() -> None:
    spec = spec_from(
        replicas=4,
        abortScaleDownDelaySeconds=60,
        strategy=canary([{"setWeight": 50}, {"analysis": {"gates": [{"name": "error-rate"}]}}]),
    )
    world = healthy_world(spec)
    v1 = revision_of(world.spec)
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: w.status.current_step_index == 1)
    world.gate_value = 0.9
    world.until(lambda w: w.status.phase is Phase.ROLLING_BACK)

    world.spec = scaled(world.spec, 8)
    world.generation += 1
    world.until(lambda w: w.status.phase is Phase.ROLLED_BACK and sizes(w) == (0, 8))

    assert world.replica_sets[v1].replicas == 8


def test_status_carries_the_scale_subresource_view() -> None:
    world = healthy_world(spec_from(replicas=3))

    assert world.status.replicas == 3
    assert world.status.selector == "app.kubernetes.io/name=payment,rollwise.dev/role=workload"
