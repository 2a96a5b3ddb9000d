"""Routes (docs/rollout-semantics.md, rule 9): status shows the weight on the route object, and
a route changed by someone else (a GitOps re-sync) is set back at once, with one Event."""

from __future__ import annotations

from rollwise.api.service_status import Phase
from rollwise.core.model import SetRouterWeight
from rollwise.core.reasons import Reason
from tests.unit.core.world import World, healthy_world, released, spec_from


def paused_at_25() -> World:
    spec = spec_from(
        strategy={
            "canary": {
                "steps": [{"setWeight": 25}, {"pause": {}}],
                "trafficRouting": {"gatewayAPI": {"httpRoute": "payment"}},
            }
        }
    )
    world = healthy_world(spec)
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: w.status.phase is Phase.PAUSED)
    world.step(1)
    return world


def test_status_shows_the_weight_on_the_route() -> None:
    world = paused_at_25()

    assert world.status.route_weight == 25 == world.router_weight


def test_a_route_reverted_by_someone_else_is_set_back_with_one_event() -> None:
    world = paused_at_25()
    before = len(world.actions(SetRouterWeight))

    world.router_weight = 0  # the user's manifest re-applied: no canary backend
    world.step(1)

    assert world.actions(SetRouterWeight)[before:] == [
        SetRouterWeight(
            stable_revision=world.status.stable.revision if world.status.stable else "",
            canary_revision=world.status.canary.revision if world.status.canary else None,
            weight=25,
        )
    ]
    assert world.status.route_weight == 25
    told = world.messages(Reason.ROUTE_REASSERTED)
    assert len(told) == 1 and "(0%); set back to 25%" in told[0]
    world.run(3)
    assert len(world.messages(Reason.ROUTE_REASSERTED)) == 1


def test_the_operators_own_weight_changes_are_not_reported_as_reverts() -> None:
    world = healthy_world(
        spec_from(
            strategy={
                "canary": {
                    "steps": [{"setWeight": 25}, {"setWeight": 50}, {"pause": {}}],
                    "trafficRouting": {"gatewayAPI": {"httpRoute": "payment"}},
                }
            }
        )
    )
    world.spec = released(world.spec, "2.0.0")

    world.reach("Paused")

    assert Reason.ROUTE_REASSERTED not in world.events()
