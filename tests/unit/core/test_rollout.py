"""decide() through whole rollouts: first revision, canary steps, promotion, pauses, routers,
conditions and history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rollwise.api.service_status import HISTORY_LIMIT, Phase, ServiceStatus
from rollwise.core.decide import decide
from rollwise.core.model import (
    Action,
    CreateMigrationJob,
    DeleteReplicaSet,
    EnsureServices,
    ManualRequest,
    ScaleReplicaSet,
    SetRouterWeight,
)
from rollwise.core.passes import WATCH_FALLBACK_S
from rollwise.core.reasons import ConditionType, Reason
from rollwise.core.revision import revision_of
from tests.unit.core.world import T0, World, healthy_world, released, spec_from

MIGRATION: dict[str, Any] = {
    "template": {"spec": {"containers": [{"name": "migrate", "image": "example/app:1.0.0"}]}}
}


def canary_of(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"canary": {"steps": list(steps), **extra}}


def condition(status: ServiceStatus, ctype: str) -> Any:
    return next(c for c in status.conditions if c.type == ctype)


# ----------------------------------------------------------------------------- first revision


def test_first_revision_without_migration_goes_straight_to_healthy() -> None:
    world = World(spec=spec_from())
    revision = revision_of(world.spec)

    world.reach("Healthy")

    assert world.status.stable is not None
    assert world.status.stable.revision == revision
    assert world.status.stable.version == "1.0.0"
    assert world.status.stable.ready_replicas == 4
    assert world.status.canary is None
    assert world.status.current_step_index is None
    assert world.actions(CreateMigrationJob) == []
    assert world.actions(ScaleReplicaSet) == [ScaleReplicaSet(revision=revision, replicas=4)]
    assert world.services == EnsureServices(
        stable_revision=revision, canary_revision=None, main_revisions=(revision,)
    )
    assert world.events() == [Reason.INITIAL_DEPLOY, Reason.HEALTHY]


def test_first_revision_is_progressing_until_its_pods_are_ready() -> None:
    world = World(spec=spec_from(), pods_ready=False)

    world.run(10)

    assert world.status.phase is Phase.PROGRESSING
    assert world.status.message is not None and "0/4 ready" in world.status.message
    world.pods_ready = True
    world.reach("Healthy", passes=2)


def test_first_revision_with_migration_runs_it_before_any_pod() -> None:
    world = World(spec=spec_from(migration=MIGRATION), job_outcome="running")
    revision = revision_of(world.spec)

    world.run(5)

    assert world.status.phase is Phase.MIGRATING
    assert world.job_creations == [f"payment-migrate-{revision}"]
    assert world.actions(ScaleReplicaSet) == []
    assert world.status.stable is None

    world.job_outcome = "succeeded"
    world.reach("Healthy")

    assert world.job_creations == [f"payment-migrate-{revision}"]
    assert world.status.migration is not None
    assert world.status.migration.phase == "Succeeded"
    assert world.status.migration.revision == revision
    assert world.status.stable is not None and world.status.stable.revision == revision
    assert condition(world.status, ConditionType.MIGRATION_COMPLETE).status == "True"


# ----------------------------------------------------------------------------- full canary


def test_full_canary_promotes_the_new_revision_to_stable() -> None:
    world = healthy_world(spec_from(migration=MIGRATION))
    v1 = revision_of(world.spec)
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)

    world.reach("Healthy")

    assert world.status.stable is not None
    assert world.status.stable.revision == v2
    assert world.status.stable.version == "2.0.0"
    assert world.status.canary is None
    assert world.status.canary_weight == 0
    assert world.job_creations == [f"payment-migrate-{v1}", f"payment-migrate-{v2}"]
    assert world.replica_sets[v2].replicas == 4
    assert world.events().count(Reason.PROMOTED) == 1


def test_promotion_deletes_the_old_revision_once_after_traffic_moved() -> None:
    world = healthy_world()
    v1 = revision_of(world.spec)
    world.spec = released(world.spec, "2.0.0")
    world.reach("Healthy")

    world.run(2)

    deleted = [i for i, p in enumerate(world.passes) if DeleteReplicaSet(v1) in p.plan.actions]
    assert len(deleted) == 1
    plan = world.passes[deleted[0]].plan
    services = next(a for a in plan.actions if isinstance(a, EnsureServices))
    assert services.stable_revision != v1, "Services point at the new stable first"
    assert plan.actions.index(services) < plan.actions.index(DeleteReplicaSet(v1))
    assert v1 not in world.replica_sets


def test_each_set_weight_step_shares_the_replicas_between_canary_and_stable() -> None:
    world = healthy_world()
    v1 = revision_of(world.spec)
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)

    world.step(5)
    at_25 = (world.replica_sets[v2].replicas, world.replica_sets[v1].replicas)
    world.until(lambda w: w.status.canary_weight == 50)
    at_50 = (world.replica_sets[v2].replicas, world.replica_sets[v1].replicas)

    assert at_25 == (1, 3)
    assert at_50 == (2, 2)


def test_steps_are_completed_in_order_with_one_history_entry_each() -> None:
    world = healthy_world()
    world.spec = released(world.spec, "2.0.0")

    world.reach("Healthy")

    completed = [h.step for h in world.status.history if h.event == Reason.STEP_COMPLETED]
    assert completed == [0, 1, 2, 3]


def test_promotion_waits_until_the_canary_is_fully_ready() -> None:
    world = healthy_world(spec_from(strategy=canary_of({"setWeight": 50})))
    v1 = revision_of(world.spec)
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)
    world.step(5)
    world.ready_cap = 3

    world.run(10)

    assert world.status.phase is Phase.PROMOTING
    assert world.status.stable is not None and world.status.stable.revision == v1
    assert world.replica_sets[v2].replicas == 4
    assert world.replica_sets[v1].replicas > 0
    world.ready_cap = None
    world.reach("Healthy", passes=3)


def test_set_weight_zero_step_completes_without_canary_pods() -> None:
    spec = spec_from(strategy=canary_of({"setWeight": 0}, {"setWeight": 50}))
    world = healthy_world(spec)
    world.spec = released(world.spec, "2.0.0")

    world.run(40)  # 200 s, past the 120 s progress deadline

    assert world.status.abort is None, world.status.abort
    assert world.status.phase is Phase.HEALTHY


# ----------------------------------------------------------------------------- pauses


def test_pause_with_duration_keeps_its_original_start_across_a_restart() -> None:
    spec = spec_from(
        strategy=canary_of({"setWeight": 25}, {"pause": {"duration": "2m"}}, {"setWeight": 50})
    )
    world = healthy_world(spec)
    world.spec = released(world.spec, "2.0.0")
    world.reach("Paused")
    started = world.status.pause_started_at
    assert started is not None
    world.restart()
    stored = world.status

    before_end = decide(world.spec, stored, world.observed(), started + timedelta(seconds=119))
    after_end = decide(world.spec, stored, world.observed(), started + timedelta(seconds=120))

    assert before_end.status.phase is Phase.PAUSED
    assert before_end.status.current_step_index == 1
    assert before_end.status.pause_started_at == started
    assert before_end.requeue_after == 1.0
    assert after_end.status.current_step_index == 2
    assert after_end.status.phase is Phase.PROGRESSING


def test_pause_without_duration_waits_for_promote() -> None:
    spec = spec_from(strategy=canary_of({"setWeight": 25}, {"pause": {}}, {"setWeight": 50}))
    world = healthy_world(spec)
    world.spec = released(world.spec, "2.0.0")

    world.run(100, advance=60)

    assert world.status.phase is Phase.PAUSED
    assert world.status.current_step_index == 1
    told = world.messages(Reason.STEP_COMPLETED)
    assert told == [
        "step 1/3 (setWeight) completed; step 2 pauses until `kubectl rollwise promote`"
    ]
    assert Reason.PAUSED not in world.events(), "the transition that paused says so"

    world.request = ManualRequest(id="r1", action=Action.PROMOTE, by="alice@example.com")
    world.reach("Healthy")

    completed = [h for h in world.status.history if h.event == Reason.STEP_COMPLETED]
    assert any(h.step == 1 and h.actor == "alice@example.com" for h in completed)


# ----------------------------------------------------------------------------- Events


def five_step_rollout() -> tuple[World, int]:
    """A Healthy 1.0.0 rolled out to 2.0.0 over five steps; the index of its first pass."""
    spec = spec_from(
        replicas=2,
        strategy=canary_of(
            {"setWeight": 25},
            {"pause": {"duration": "2s"}},
            {"setWeight": 50},
            {"analysis": {"gates": [{"name": "error-rate"}]}},
            {"setWeight": 75},
        ),
    )
    world = healthy_world(spec)
    start = len(world.passes)
    world.spec = released(world.spec, "2.0.0")
    world.generation += 1
    world.reach("Healthy")
    return world, start


def test_a_canary_rollout_posts_one_event_per_transition() -> None:
    world, start = five_step_rollout()

    events = [e for p in world.passes[start:] for e in p.plan.events]
    added = world.status.history[-len(events) :]

    assert [e.reason for e in events] == [
        Reason.ROLLOUT_STARTED,
        *[Reason.STEP_COMPLETED] * 5,
        Reason.PROMOTED,
    ]
    assert len({(e.reason, e.message) for e in events}) == len(events), "an Event posted twice"
    assert len({(h.event, h.step) for h in added}) == len(added), "a transition told twice"
    assert [(h.event, h.message) for h in added] == [(e.reason, e.message) for e in events]


def test_each_transition_tells_what_it_started() -> None:
    world, _ = five_step_rollout()

    started, *completed, promoted = world.status.history[-7:]

    assert started.message.endswith("in 5 steps; canary weight set to 25%")
    assert [h.message.split("; ", 1)[1] for h in completed[:3]] == [
        "step 2 pauses for 2s",
        "canary weight set to 50%",
        "step 4 measures error-rate",
    ]
    assert completed[3].message.startswith(
        "step 4/5 (analysis) completed: gate error-rate passed, 0.01 within [-inf, 0.05]"
    )
    assert completed[3].message.endswith("; canary weight set to 75%")
    assert completed[4].message.endswith("; promoting 2.0.0: scaling it to 2 replicas")
    assert "2.0.0" in promoted.message and "is stable and Healthy" in promoted.message
    assert [h.step for h in (started, *completed)] == [0, 0, 1, 2, 3, 4]
    assert [h.weight for h in (started, *completed)] == [25, 25, 50, 50, 75, 100]
    assert {h.revision for h in (started, *completed, promoted)} == {revision_of(world.spec)}


# ----------------------------------------------------------------------------- conditions


def test_ready_is_true_only_in_healthy_and_carries_the_generation() -> None:
    world = World(spec=spec_from(), generation=3)

    for _ in range(3):
        world.step(5)
    world.spec = released(world.spec, "2.0.0")
    world.generation = 4
    for _ in range(40):
        world.step(5)
        status = world.status
        ready = condition(status, ConditionType.READY)
        assert (ready.status == "True") == (status.phase is Phase.HEALTHY)
        assert status.observed_generation == 4
        assert {c.observed_generation for c in status.conditions} == {4}

    assert world.status.phase is Phase.HEALTHY


def test_progressing_and_paused_conditions_follow_the_phase() -> None:
    world = healthy_world()
    world.spec = released(world.spec, "2.0.0")

    world.reach("Paused")

    assert condition(world.status, ConditionType.PROGRESSING).status == "True"
    assert condition(world.status, ConditionType.PAUSED).status == "True"
    assert condition(world.status, ConditionType.READY).status == "False"
    assert condition(world.status, ConditionType.DEGRADED).status == "False"


def test_condition_transition_time_is_kept_while_its_status_does_not_change() -> None:
    world = healthy_world()
    became_ready = condition(world.status, ConditionType.READY).last_transition_time

    world.run(10, advance=60)

    assert world.now > T0 + timedelta(minutes=9)
    assert condition(world.status, ConditionType.READY).last_transition_time == became_ready
    world.spec = released(world.spec, "2.0.0")
    world.step(5)
    assert condition(world.status, ConditionType.READY).last_transition_time == world.now


# ----------------------------------------------------------------------------- history


def test_history_keeps_only_the_latest_twenty_entries() -> None:
    steps = [{"setWeight": w} for w in range(5, 100, 5)]
    world = healthy_world(spec_from(strategy=canary_of(*steps)))
    world.spec = released(world.spec, "2.0.0")

    world.reach("Healthy", passes=100)

    history = world.status.history
    assert len(history) == HISTORY_LIMIT
    assert history[-1].event == Reason.PROMOTED
    assert [h.at for h in history] == sorted(h.at for h in history)
    assert ServiceStatus.model_validate(world.status.to_wire()) == world.status


# ----------------------------------------------------------------------------- routers


def router_spec(router: dict[str, Any]) -> Any:
    return spec_from(
        strategy=canary_of(
            {"setWeight": 25},
            {"analysis": {"gates": [{"name": "error-rate"}]}},
            {"setWeight": 50},
            trafficRouting=router,
        )
    )


def test_gateway_router_gets_each_step_weight_and_stable_keeps_full_capacity() -> None:
    world = healthy_world(router_spec({"gatewayAPI": {"httpRoute": "payment"}}))
    v1 = revision_of(world.spec)
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)
    start = len(world.log)

    world.reach("Promoting")

    rollout = world.log[start:]
    routed = [a for a in rollout if isinstance(a, SetRouterWeight)]
    scaled = [a for a in rollout if isinstance(a, ScaleReplicaSet)]
    assert [a.weight for a in routed] == [25, 50, 100]
    assert all(a.stable_revision == v1 and a.canary_revision == v2 for a in routed)
    assert [a.revision for a in scaled] == [v2, v2, v2]
    assert [a.replicas for a in scaled] == [1, 2, 4]
    assert world.replica_sets[v1].replicas == 4


def test_nginx_router_abort_sets_weight_zero_before_the_canary_scales_down() -> None:
    world = healthy_world(router_spec({"nginx": {"ingress": "payment"}}))
    v1 = revision_of(world.spec)
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)
    world.gate_value = 0.5

    world.reach("RolledBack")

    drained = world.log.index(SetRouterWeight(stable_revision=v1, canary_revision=v2, weight=0))
    scaled_down = world.log.index(ScaleReplicaSet(revision=v2, replicas=0))
    assert drained < scaled_down
    assert world.router_weight == 0
    assert world.replica_sets[v1].replicas == 4


def test_replicas_router_never_plans_router_weights() -> None:
    world = healthy_world()
    world.spec = released(world.spec, "2.0.0")

    world.reach("Healthy")

    assert world.actions(SetRouterWeight) == []


def test_gateway_router_sends_no_traffic_to_the_canary_backend_once_promoted() -> None:
    world = healthy_world(router_spec({"gatewayAPI": {"httpRoute": "payment"}}))
    world.spec = released(world.spec, "2.0.0")

    world.reach("Healthy")
    world.run(2)

    assert world.status.canary_weight == 0
    assert world.router_weight == 0


def test_waiting_for_canary_pods_relies_on_watch_events_with_a_fallback_timer() -> None:
    """Ready pods change their ReplicaSet's status, whose watch event wakes the service; the
    timer only covers a missed event, and never sleeps past the progress deadline."""
    world = healthy_world(spec_from(progressDeadlineSeconds=120))
    world.spec = released(world.spec, "2.0.0")
    world.pods_ready = False

    waits = [world.step(1.0).requeue_after for _ in range(3)]
    world.step(100.0)  # about 100 s into the step: less than 30 s of the deadline left
    near_deadline = world.step(0.0).requeue_after
    started = world.status.step_started_at
    assert started is not None
    left = (started + timedelta(seconds=120) - world.now).total_seconds()

    assert waits[-1] == WATCH_FALLBACK_S == 30.0
    assert 0 < left < WATCH_FALLBACK_S
    assert near_deadline == left
