"""Blue-green: the new revision at full size behind the preview Service while the active one
keeps serving, analysis on the preview, the active Service switched in one write, analysis
after the switch with a switch back on failure, the old revision scaled down after a delay."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from rollwise.api.service import ServiceSpec, Strategy
from rollwise.core.model import Action, ManualRequest, SetRouterWeight
from rollwise.core.reasons import Reason
from tests.unit.core.world import World, gate_from, healthy_world, released, spec_from

GATES = {"gates": [{"name": "error-rate"}]}


def blue_green(**fields: Any) -> ServiceSpec:
    strategy = {
        "blueGreen": {
            "prePromotionAnalysis": GATES,
            "postPromotionAnalysis": GATES,
            "autoPromotion": True,
            "scaleDownDelaySeconds": 60,
        }
        | fields
    }
    return spec_from(strategy=strategy)


def world_at(spec: ServiceSpec, **rules: Any) -> World:
    world = healthy_world(spec, gates={"error-rate": gate_from(interval="10s", count=1)}, **rules)
    world.spec = released(world.spec, "2.0.0")
    return world


def revisions(world: World) -> tuple[str, str]:
    stable, canary = world.status.stable, world.status.canary
    assert stable is not None and canary is not None
    return stable.revision, canary.revision


def sizes(world: World) -> dict[str, int]:
    return {rev: rs.replicas for rev, rs in world.replica_sets.items()}


def test_a_spec_sets_exactly_one_of_canary_and_blue_green() -> None:
    with pytest.raises(ValidationError, match="exactly one of canary, blueGreen"):
        Strategy.model_validate({})
    both = {"canary": {"steps": [{"setWeight": 50}]}, "blueGreen": {}}
    with pytest.raises(ValidationError, match="exactly one of canary, blueGreen"):
        Strategy.model_validate(both)


def test_a_blue_green_runs_as_the_canary_steps_it_implies_and_reads_back_the_same() -> None:
    spec = blue_green(autoPromotion=False)

    kinds = [
        "setWeight 0",
        "analysis",
        "pause",
        "setWeight 100",
        "analysis",
        "pause 60s",
    ]
    steps = spec.strategy.canary.steps
    shown = [
        f"setWeight {s.set_weight}"
        if s.set_weight is not None
        else ("analysis" if s.analysis else f"pause {s.pause.duration or ''}".strip())  # type: ignore[union-attr]
        for s in steps
    ]
    assert shown == kinds
    assert ServiceSpec.model_validate(spec.to_wire()) == spec


def test_the_preview_runs_at_full_size_beside_a_full_active_revision_without_traffic() -> None:
    world = world_at(blue_green())

    world.until(lambda w: w.status.current_step_index == 1)

    stable, canary = revisions(world)
    assert sizes(world) == {stable: 4, canary: 4}
    assert world.services is not None and world.services.main_revisions == (stable,)
    assert world.status.canary_weight == 0


def test_the_switch_moves_the_active_service_in_one_write_and_keeps_the_old_revision_full() -> None:
    world = world_at(blue_green())

    world.until(lambda w: w.status.current_step_index == 3)  # analysis after the switch

    stable, canary = revisions(world)
    assert world.services is not None and world.services.main_revisions == (canary,)
    assert sizes(world) == {stable: 4, canary: 4}
    assert world.status.canary_weight == 100


def test_after_the_delay_the_new_revision_is_stable_and_the_old_one_scaled_down() -> None:
    world = world_at(blue_green())

    world.reach("Healthy", passes=100)

    assert world.status.stable is not None
    new = world.status.stable.revision
    assert world.services is not None and world.services.main_revisions == (new,)
    assert {rev: n for rev, n in sizes(world).items() if n} == {new: 4}
    switched = next(p.now for p in world.passes if p.plan.status.canary_weight == 100)
    promoted = next(p.now for p in world.passes if "Promoted" in [e.reason for e in p.plan.events])
    assert (promoted - switched).total_seconds() >= 60


def test_a_failure_after_the_switch_switches_back_at_once() -> None:
    world = world_at(blue_green())
    world.until(lambda w: w.status.current_step_index == 3)  # analysis after the switch
    stable, _ = revisions(world)
    world.gate_value = 0.5

    world.reach("RollingBack")

    assert world.status.abort is not None and world.status.abort.reason == Reason.GATE_FAILED
    assert world.services is not None and world.services.main_revisions == (stable,)
    assert world.status.canary_weight == 0
    assert sizes(world)[stable] == 4  # nothing to scale up: the switch back is instant


def test_without_auto_promotion_the_switch_waits_for_promote() -> None:
    world = world_at(blue_green(autoPromotion=False))

    world.run(40, advance=10)

    assert world.status.current_step_index == 2
    assert world.status.phase.value == "Paused" and world.status.canary_weight == 0
    world.request = ManualRequest(id="r1", action=Action.PROMOTE, by="alice")
    world.until(lambda w: w.status.canary_weight == 100)
    _, canary = revisions(world)
    assert world.services is not None and world.services.main_revisions == (canary,)


def test_under_a_traffic_router_the_switch_is_the_route_from_0_to_100_in_one_write() -> None:
    world = world_at(blue_green(trafficRouting={"gatewayAPI": {"httpRoute": "payment"}}))

    world.until(lambda w: w.status.current_step_index == 3)

    weights = [a.weight for a in world.actions(SetRouterWeight)]
    assert weights[-1] == 100 and set(weights) <= {0, 100}
    stable, canary = revisions(world)
    assert sizes(world) == {stable: 4, canary: 4}


def test_the_same_gate_before_and_after_a_switch_measures_again_after_it() -> None:
    """A sample taken before the switch (the preview's) never passes the analysis after it."""
    world = world_at(blue_green())
    world.until(lambda w: w.status.current_step_index == 3)
    switched = world.now

    world.until(lambda w: w.status.current_step_index == 4)

    folded = [
        s.measured_at
        for p in world.passes
        if p.before.current_step_index == 3
        for s in p.observed.samples
    ]
    assert folded and min(folded) > switched
