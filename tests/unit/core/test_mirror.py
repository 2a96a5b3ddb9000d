"""setMirror: copies of stable's requests to the canary, planned with the router weight, kept
until a later setMirror, and ended by promotion, abort and supersede."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from rollwise.api.service import CanaryStep, ServiceSpec
from rollwise.core.model import Action, ManualRequest, ScaleReplicaSet, SetRouterWeight
from rollwise.core.reasons import Reason
from rollwise.core.revision import revision_of
from tests.unit.core.world import World, healthy_world, released, spec_from

GATEWAY = {"gatewayAPI": {"httpRoute": "payment"}}


def mirror_spec(*steps: dict[str, Any], routing: dict[str, Any] | None = None) -> ServiceSpec:
    return spec_from(
        strategy={"canary": {"steps": list(steps), "trafficRouting": routing or GATEWAY}}
    )


def rolled_out(*steps: dict[str, Any]) -> tuple[World, str, str]:
    """A Healthy 1.0.0 behind the gatewayAPI router, then 2.0.0 released with these steps."""
    world = healthy_world(mirror_spec(*steps))
    v1 = revision_of(world.spec)
    world.spec = released(world.spec, "2.0.0")
    return world, v1, revision_of(world.spec)


def routed(world: World, start: int = 0) -> list[tuple[int, int]]:
    return [(a.weight, a.mirror) for a in world.log[start:] if isinstance(a, SetRouterWeight)]


def test_set_mirror_at_weight_zero_copies_requests_to_a_canary_sized_for_the_copies() -> None:
    world, v1, v2 = rolled_out({"setMirror": 50}, {"pause": {}})

    world.reach("Paused")

    assert world.status.canary_weight == 0
    assert world.status.mirror_percent == 50
    assert world.actions(SetRouterWeight)[-1] == SetRouterWeight(
        stable_revision=v1, canary_revision=v2, weight=0, mirror=50
    )
    # 50% of 4 replicas' requests are copied: the canary runs 2 pods, stable all 4.
    assert world.replica_sets[v2].replicas == 2
    assert world.replica_sets[v1].replicas == 4
    assert world.router_mirror == 50


def test_the_mirror_step_completes_only_once_its_canary_pods_are_ready() -> None:
    world, _, v2 = rolled_out({"setMirror": 50}, {"pause": {}})
    world.pods_ready = False

    world.run(3)

    assert world.status.current_step_index == 0
    assert world.status.message == "step 1: waiting for canary pods, 0/2 ready"
    world.pods_ready = True
    world.reach("Paused")
    assert world.status.current_step_index == 1
    assert world.replica_sets[v2].ready_replicas == 2


def test_the_mirror_stays_in_force_through_later_steps_until_a_set_mirror_changes_it() -> None:
    world, _, _ = rolled_out(
        {"setMirror": 30},
        {"setWeight": 10},
        {"pause": {"duration": "10s"}},
        {"setMirror": 0},
        {"setWeight": 20},
        {"pause": {}},
    )
    start = len(world.log)

    world.until(lambda w: w.status.current_step_index == 5 and w.status.phase == "Paused")

    # setMirror 0 needs no new pods, so it and setWeight 20 complete in one pass: one action.
    assert routed(world, start) == [(0, 30), (10, 30), (20, 0)]
    assert world.status.mirror_percent == 0
    completed = world.messages(Reason.ROLLOUT_STARTED) + world.messages(Reason.STEP_COMPLETED)
    assert any("30% of stable's requests mirrored to the canary" in m for m in completed)
    assert any("mirroring to the canary stopped" in m for m in completed)


def test_promotion_ends_the_mirror_together_with_the_full_weight() -> None:
    world, _, _ = rolled_out({"setMirror": 40}, {"setWeight": 50})
    start = len(world.log)

    world.reach("Healthy")

    assert (100, 0) in routed(world, start)
    assert all(m == 0 for w, m in routed(world, start) if w == 100)
    assert world.router_mirror == 0 and world.router_weight == 0
    assert world.status.mirror_percent == 0


def test_an_abort_drains_weight_and_mirror_in_one_action_before_the_canary_scales_down() -> None:
    world, v1, v2 = rolled_out({"setWeight": 10}, {"setMirror": 60}, {"pause": {}})
    world.reach("Paused")
    world.request = ManualRequest(id="r1", action=Action.ABORT, by="alice")

    world.reach("RolledBack")

    drained = world.log.index(
        SetRouterWeight(stable_revision=v1, canary_revision=v2, weight=0, mirror=0)
    )
    scaled_down = world.log.index(ScaleReplicaSet(revision=v2, replicas=0))
    assert drained < scaled_down
    assert not any(isinstance(a, SetRouterWeight) and a.mirror > 0 for a in world.log[drained:])
    assert world.status.mirror_percent == 0


def test_a_gate_failure_stops_the_copies_in_the_pass_that_aborts() -> None:
    world, _, _ = rolled_out({"setMirror": 50}, {"analysis": {"gates": [{"name": "error-rate"}]}})
    world.gate_value = 0.5

    world.until(lambda w: w.status.abort is not None)

    last = world.passes[-1].plan
    assert last.status.mirror_percent == 0
    assert [(a.weight, a.mirror) for a in last.actions if isinstance(a, SetRouterWeight)] == [
        (0, 0)
    ]


def test_a_superseded_mirroring_canary_copies_nothing_to_the_new_one_until_its_step() -> None:
    world, _, v2 = rolled_out({"setMirror": 50}, {"pause": {}}, {"setMirror": 20})
    world.reach("Paused")
    world.spec = released(world.spec, "3.0.0")
    v3 = revision_of(world.spec)
    start = len(world.log)

    world.until(lambda w: w.status.canary is not None and w.status.canary.revision == v3)

    router = [a for a in world.log[start:] if isinstance(a, SetRouterWeight)]
    assert router[0].canary_revision == v2 and (router[0].weight, router[0].mirror) == (0, 0)
    assert all(a.mirror in (0, 50) for a in router)
    assert all(a.canary_revision == v3 for a in router if a.mirror)


def test_a_mirror_step_needs_the_gateway_api_router() -> None:
    with pytest.raises(ValidationError, match=r"setMirror steps need trafficRouting\.gatewayAPI"):
        mirror_spec({"setMirror": 10}, routing={"nginx": {"ingress": "payment"}})
    with pytest.raises(ValidationError, match=r"setMirror steps need trafficRouting\.gatewayAPI"):
        spec_from(strategy={"canary": {"steps": [{"setMirror": 10}]}})


@pytest.mark.parametrize(
    "step", [{"setMirror": 101}, {"setMirror": -1}, {"setMirror": 5, "setWeight": 5}]
)
def test_a_mirror_step_is_one_percentage(step: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CanaryStep.model_validate(step)


def test_mirror_with_defaults_to_the_standard_filter_and_keeps_the_wire_form() -> None:
    spec = mirror_spec({"setMirror": 10})
    route = spec.strategy.canary.traffic_routing.gateway_api
    assert route is not None

    assert route.mirror_mode == "RequestMirror"
    assert "mirrorWith" not in spec.to_wire()["strategy"]["canary"]["trafficRouting"]["gatewayAPI"]
    traefik = mirror_spec(
        {"setMirror": 10},
        routing={"gatewayAPI": {"httpRoute": "p", "mirrorWith": "TraefikService"}},
    )
    assert traefik.strategy.canary.traffic_routing.gateway_api.mirror_mode == "TraefikService"  # type: ignore[union-attr]


def test_traefik_native_lb_needs_mirror_with_traefik_service() -> None:
    with pytest.raises(ValidationError, match="traefikNativeLB applies to mirrorWith"):
        mirror_spec(
            {"setMirror": 10}, routing={"gatewayAPI": {"httpRoute": "p", "traefikNativeLB": True}}
        )
    spec = mirror_spec(
        {"setMirror": 10},
        routing={
            "gatewayAPI": {
                "httpRoute": "p",
                "mirrorWith": "TraefikService",
                "traefikNativeLB": True,
            }
        },
    )
    wire = spec.to_wire()["strategy"]["canary"]["trafficRouting"]["gatewayAPI"]
    assert wire["traefikNativeLB"] is True
