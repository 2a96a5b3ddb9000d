"""References checked at apply time and the kstatus conditions (docs/rollout-semantics.md,
rules 6 and 7): a missing MetricGate, route object or workloadRef Deployment holds the new
revision before any of it runs, as InvalidSpec and Stalled, and heals by itself (so do the
Secrets its webhooks and notifications name); Reconciling
while a rollout moves, Stalled once it settled on a failure."""

from __future__ import annotations

from typing import Any

from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import Phase, ServiceStatus
from rollwise.core.model import CreateMigrationJob, ScaleReplicaSet, SetRouterWeight
from rollwise.core.reasons import Reason
from rollwise.core.revision import revision_of
from rollwise.core.secret_refs import SecretUse, secret_problem, secret_uses
from tests.unit.core.test_properties import MIGRATION
from tests.unit.core.world import World, gate_from, healthy_world, released, spec_from

ROUTE = (
    "HTTPRoute shop/payment (spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute) "
    "does not exist"
)


def conditions(status: ServiceStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def nothing_of(world: World, revision: str) -> None:
    assert not [a for a in world.actions(ScaleReplicaSet) if a.revision == revision]
    assert not [a for a in world.actions(CreateMigrationJob) if a.revision == revision]
    assert all(a.weight == 0 for a in world.actions(SetRouterWeight))


def test_a_missing_gate_holds_the_new_revision_before_any_pod_and_heals_by_itself() -> None:
    world = healthy_world(spec_from(migration=MIGRATION))
    world.gates = {}
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)

    world.run(10)

    nothing_of(world, v2)
    assert world.status.phase is Phase.PENDING
    assert world.status.message is not None
    assert world.status.message.startswith(
        "invalid spec: MetricGate shop/error-rate does not exist"
    )
    held = conditions(world.status)
    assert held["InvalidSpec"] == ("True", "InvalidSpec")
    assert held["Stalled"] == ("True", "InvalidSpec")
    assert held["Reconciling"][0] == "False"
    assert held["Ready"] == ("False", "InvalidSpec")
    assert world.events().count(Reason.INVALID_SPEC) == 1

    world.gates = {"error-rate": gate_from()}
    world.step(5)
    moving = conditions(world.status)
    assert moving["InvalidSpec"][0] == "False" and moving["Stalled"][0] == "False"
    assert moving["Reconciling"][0] == "True"
    world.reach("Healthy")
    assert world.status.stable is not None and world.status.stable.revision == v2


def test_a_missing_route_object_holds_the_new_revision() -> None:
    spec = spec_from(
        strategy={
            "canary": {
                "steps": [{"setWeight": 25}, {"pause": {}}],
                "trafficRouting": {"gatewayAPI": {"httpRoute": "payment"}},
            }
        }
    )
    world = healthy_world(spec)
    world.missing_references = (ROUTE,)
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)

    world.run(5)

    nothing_of(world, v2)
    assert ROUTE in (world.status.message or "")
    assert conditions(world.status)["Stalled"] == ("True", "InvalidSpec")

    world.missing_references = ()
    world.until(lambda w: w.status.phase is Phase.PAUSED)
    assert conditions(world.status)["InvalidSpec"][0] == "False"


def test_a_missing_workload_deployment_is_invalid_spec() -> None:
    wire: dict[str, Any] = spec_from().to_wire()
    del wire["template"]
    wire["workloadRef"] = {"name": "payment"}
    world = World(spec=ServiceSpec.model_validate(wire))

    world.run(3)

    held = conditions(world.status)
    assert held["InvalidSpec"] == ("True", "InvalidSpec")
    assert held["Stalled"] == ("True", "InvalidSpec")


def test_reconciling_while_moving_stalled_once_rolled_back_neither_when_healthy() -> None:
    world = healthy_world()
    healthy = conditions(world.status)
    assert healthy["Ready"][0] == "True"
    assert healthy["Reconciling"][0] == "False" and healthy["Stalled"][0] == "False"

    world.spec = released(world.spec, "2.0.0")
    world.step(1)
    assert conditions(world.status)["Reconciling"] == ("True", "Progressing")
    assert conditions(world.status)["Stalled"][0] == "False"

    world.gate_value = 0.9
    world.reach("RolledBack")
    settled = conditions(world.status)
    assert settled["Stalled"] == ("True", "GateFailed")
    assert settled["Reconciling"][0] == "False"
    assert settled["Ready"][0] == "False"


def test_a_failed_migration_is_stalled() -> None:
    world = healthy_world(spec_from(migration=MIGRATION))
    world.job_outcome = "failed"
    world.spec = released(world.spec, "2.0.0")

    world.reach("MigrationFailed")

    assert conditions(world.status)["Stalled"] == ("True", "MigrationFailed")
    assert conditions(world.status)["Reconciling"][0] == "False"


def test_the_same_eight_conditions_in_the_same_order_in_every_phase() -> None:
    world = healthy_world()
    world.spec = released(world.spec, "2.0.0")
    seen = set()
    for _ in range(30):
        world.step(5)
        seen.add(tuple(c.type for c in world.status.conditions))
    assert seen == {
        (
            "Ready",
            "Progressing",
            "Degraded",
            "Paused",
            "MigrationComplete",
            "Reconciling",
            "Stalled",
            "InvalidSpec",
        )
    }


def test_every_secret_a_spec_names_is_listed_with_the_field_naming_it() -> None:
    token = {"name": "Authorization", "valueSecretRef": {"name": "auth", "key": "token"}}
    spec = spec_from(
        strategy={
            "canary": {
                "steps": [{"setWeight": 50}],
                "webhooks": [
                    {"name": "a", "type": "event", "url": "http://h/", "headers": [token]},
                    {"name": "b", "type": "rollback", "urlSecretRef": {"name": "u", "key": "b"}},
                ],
            }
        },
        notifications={
            "when": ["Promoted"],
            "receivers": [
                {"name": "chat", "slack": {"urlSecretRef": {"name": "u", "key": "chat"}}},
                {"name": "ops", "webhook": {"url": "http://h/"}, "headers": [token]},
            ],
        },
    )

    uses = [(u.name, u.key, u.field) for u in secret_uses(spec)]

    assert uses == [
        ("auth", "token", "spec.strategy.canary.webhooks[0].headers[0].valueSecretRef"),
        ("u", "b", "spec.strategy.canary.webhooks[1].urlSecretRef"),
        ("u", "chat", "spec.notifications.receivers[0].slack.urlSecretRef"),
        ("auth", "token", "spec.notifications.receivers[1].headers[0].valueSecretRef"),
    ]
    assert secret_uses(spec_from()) == []


def test_a_secret_use_is_wrong_when_the_secret_or_its_key_is_missing() -> None:
    use = SecretUse("auth", "token", "spec.notifications.receivers[0].slack.urlSecretRef")

    assert secret_problem(use, "shop", frozenset({"token"})) is None
    assert secret_problem(use, "shop", None) == (
        "Secret shop/auth (spec.notifications.receivers[0].slack.urlSecretRef) does not exist"
    )
    assert secret_problem(use, "shop", frozenset({"url"})) == (
        "Secret shop/auth (spec.notifications.receivers[0].slack.urlSecretRef) has no key token"
    )


def test_a_missing_secret_holds_the_new_revision_like_any_missing_reference() -> None:
    world = healthy_world(spec_from(migration=MIGRATION))
    missing = "Secret shop/chat (spec.notifications.receivers[0].slack.urlSecretRef) does not exist"
    world.missing_references = (missing,)
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)

    world.run(10)

    nothing_of(world, v2)
    assert world.status.message == (
        f"invalid spec: {missing}; nothing of the new revision runs until it exists and is valid"
    )
    assert conditions(world.status)["Stalled"] == ("True", "InvalidSpec")
