"""workloadRef: adopting an existing Deployment and handing it back, never short of ready pods."""

from __future__ import annotations

from rollwise.api.service import ServiceSpec, WorkloadRef
from rollwise.api.service_status import Phase
from rollwise.core.model import AdoptWorkload, ReleaseWorkload, ScaleReplicaSet, ScaleWorkload
from rollwise.core.reasons import Reason
from rollwise.core.revision import revision_of
from tests.unit.core.world import World, healthy_world, released, spec_from


def referencing(spec: ServiceSpec) -> ServiceSpec:
    """The spec as the controller hands it to decide(): workloadRef, template read from it."""
    return spec.model_copy(update={"workload_ref": WorkloadRef(name="payment")})


def serving(world: World) -> int:
    """Ready pods of the service: rollwise's and the Deployment's."""
    ours = sum(rs.ready_replicas for rs in world.replica_sets.values())
    return ours + (world.workload.ready_replicas if world.workload else 0)


def adopting_world(**rules: object) -> World:
    from rollwise.core.model import WorkloadState

    return World(
        spec=referencing(spec_from(replicas=3)),
        workload=WorkloadState(name="payment", replicas=3, ready_replicas=3),
        **rules,  # type: ignore[arg-type]
    )


def test_the_deployment_is_scaled_to_zero_only_once_rollwise_pods_are_all_ready() -> None:
    world = adopting_world()
    low = serving(world)

    first = world.step()
    assert AdoptWorkload(name="payment") in first.actions
    assert not any(isinstance(a, ScaleWorkload) for a in first.actions)
    for _ in range(5):
        world.step(5)
        low = min(low, serving(world))

    assert world.status.phase is Phase.HEALTHY
    assert world.workload is not None and world.workload.replicas == 0
    assert world.actions(ScaleWorkload) == [ScaleWorkload(name="payment", replicas=0)]
    assert world.events().count(Reason.WORKLOAD_ADOPTED) == 1
    assert low >= 3


def test_a_deployment_whose_pods_never_get_replaced_keeps_serving() -> None:
    world = adopting_world(pods_ready=False)
    from dataclasses import replace

    assert world.workload is not None
    world.workload = replace(world.workload, ready_replicas=3)

    world.run(6)

    assert world.workload.replicas == 3
    assert world.actions(ScaleWorkload) == []


def test_a_new_template_in_the_deployment_rolls_out_as_a_canary() -> None:
    world = adopting_world()
    world.reach("Healthy")
    v1 = revision_of(world.spec)

    plain = world.spec.model_copy(update={"workload_ref": None})
    world.spec = referencing(released(plain, "2.0.0"))  # the Deployment's template changed
    world.step(5)

    assert world.status.canary is not None and world.status.canary.revision != v1
    assert world.status.stable is not None and world.status.stable.revision == v1
    assert world.workload is not None and world.workload.replicas == 0


def test_deletion_hands_the_pods_back_before_the_finalizer_goes() -> None:
    world = adopting_world()
    world.reach("Healthy")
    ours = dict(world.replica_sets)
    world.deleting = True
    low = serving(world)

    world.step(5)
    assert world.workload is not None and world.workload.replicas == 3
    assert not world.released
    for _ in range(3):
        world.step(5)
        low = min(low, serving(world))

    assert world.released
    assert world.events()[-1] == Reason.WORKLOAD_RELEASED
    assert world.replica_sets == ours  # rollwise's pods go with the service, not before
    assert not any(
        isinstance(a, ScaleReplicaSet) for p in world.passes[-4:] for a in p.plan.actions
    )
    assert low >= 3


def test_deleting_a_service_whose_deployment_is_gone_releases_at_once() -> None:
    world = adopting_world()
    world.reach("Healthy")
    world.workload = None
    world.deleting = True

    plan = world.step(5)

    assert ReleaseWorkload(name="payment") in plan.actions


def test_a_missing_deployment_is_reported_once_and_waited_for() -> None:
    wire = spec_from().to_wire()
    del wire["template"]
    wire["workloadRef"] = {"name": "payment"}
    world = World(spec=ServiceSpec.model_validate(wire))

    world.run(5)

    assert world.status.phase is Phase.PENDING
    assert world.events().count(Reason.WORKLOAD_MISSING) == 1
    assert "Deployment shop/payment does not exist" in (world.status.message or "")
    assert world.log == []


def test_replicas_in_the_deployment_manifest_is_warned_about_once() -> None:
    from dataclasses import replace

    world = adopting_world()
    assert world.workload is not None
    world.workload = replace(world.workload, manifest_sets_replicas=True)

    world.run(4)

    assert world.events().count(Reason.WORKLOAD_DRIFT) == 1


def test_a_service_without_workload_ref_never_touches_a_deployment() -> None:
    world = healthy_world()

    world.run(3)

    assert world.actions(AdoptWorkload) == world.actions(ScaleWorkload) == []
