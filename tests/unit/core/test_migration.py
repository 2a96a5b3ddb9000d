"""Migrations: once per revision, deterministic Job names, adoption after a crash, failure and
retry, and never a canary pod before the migration succeeded."""

from __future__ import annotations

from typing import Any

from rollwise.api.service_status import MigrationPhase, Phase
from rollwise.core.model import (
    Action,
    CreateMigrationJob,
    EnsureServices,
    JobState,
    ManualRequest,
    ScaleReplicaSet,
)
from rollwise.core.naming import migration_job_name
from rollwise.core.reasons import ConditionType, Reason
from rollwise.core.revision import revision_of
from tests.unit.core.world import World, healthy_world, released, spec_from

MIGRATION: dict[str, Any] = {
    "template": {"spec": {"containers": [{"name": "migrate", "image": "example/app:1.0.0"}]}}
}


def v2_world(**rules: Any) -> tuple[World, str, str]:
    """v1 Healthy (migrated), then v2 declared; returns the world and both revisions."""
    world = healthy_world(spec_from(migration=MIGRATION))
    v1 = revision_of(world.spec)
    for name, value in rules.items():
        setattr(world, name, value)
    world.spec = released(world.spec, "2.0.0")
    return world, v1, revision_of(world.spec)


def degraded(world: World) -> Any:
    return next(c for c in world.status.conditions if c.type == ConditionType.DEGRADED)


def test_migration_job_is_created_once_per_revision() -> None:
    world, _, v2 = v2_world(job_outcome="running")

    world.run(5)

    assert world.status.phase is Phase.MIGRATING
    assert world.actions(CreateMigrationJob)[-1] == CreateMigrationJob(
        revision=v2, job_name=f"payment-migrate-{v2}"
    )
    assert world.job_creations.count(f"payment-migrate-{v2}") == 1
    assert world.status.migration is not None
    assert world.status.migration.attempts == 1
    assert world.status.migration.phase is MigrationPhase.RUNNING


def test_status_message_names_the_migration_job_from_the_pass_that_creates_it() -> None:
    world, _, v2 = v2_world(job_outcome="running")

    world.step(5)

    assert world.status.phase is Phase.MIGRATING
    assert world.status.message is not None
    assert f"payment-migrate-{v2}" in world.status.message


def test_canary_waits_for_the_migration_to_succeed() -> None:
    world, _, v2 = v2_world(job_outcome="running")

    world.run(5)

    assert v2 not in world.replica_sets
    assert world.status.canary_weight == 0
    world.job_outcome = "succeeded"
    world.step(5)
    assert world.replica_sets[v2].replicas == 1
    assert world.status.migration is not None
    assert world.status.migration.phase is MigrationPhase.SUCCEEDED


def test_failed_migration_stops_the_rollout_and_leaves_stable_untouched() -> None:
    world, v1, v2 = v2_world(job_outcome="failed")
    start = len(world.log)
    stable = world.status.stable

    world.run(30)

    assert world.status.phase is Phase.MIGRATION_FAILED
    assert world.status.stable == stable
    assert world.replica_sets[v1].replicas == 4
    rollout = world.log[start:]
    assert [a for a in rollout if isinstance(a, ScaleReplicaSet)] == []
    assert all(a.main_revisions == (v1,) for a in rollout if isinstance(a, EnsureServices))
    assert v2 not in world.replica_sets
    assert world.status.abort is not None
    assert world.status.abort.reason == Reason.MIGRATION_FAILED
    assert "BackoffLimitExceeded" in world.status.abort.message
    assert world.events().count(Reason.MIGRATION_FAILED) == 1
    assert world.job_creations.count(f"payment-migrate-{v2}") == 1
    assert degraded(world).status == "True"
    assert degraded(world).reason == Reason.MIGRATION_FAILED


def test_first_revision_migration_failure_deploys_nothing() -> None:
    world = World(spec=spec_from(migration=MIGRATION), job_outcome="failed")

    world.run(10)

    assert world.status.phase is Phase.MIGRATION_FAILED
    assert world.status.stable is None
    assert world.replica_sets == {}
    assert len(world.job_creations) == 1


def test_retry_after_migration_failure_starts_attempt_two_with_a_new_job_name() -> None:
    world, _, v2 = v2_world(job_outcome="failed")
    world.reach("MigrationFailed")
    world.job_outcome = "running"
    world.request = ManualRequest(id="retry-1", action=Action.RETRY, by="bob")

    world.run(5)

    second = migration_job_name("payment", v2, 2)
    assert second == f"payment-migrate-{v2}-2"
    assert world.job_creations[-2:] == [f"payment-migrate-{v2}", second]
    assert world.status.phase is Phase.MIGRATING
    assert world.status.migration is not None
    assert world.status.migration.attempts == 2
    assert world.status.migration.job == second
    assert world.status.abort is None
    assert world.status.last_request is not None and world.status.last_request.id == "retry-1"
    retried = [h for h in world.status.history if h.event == Reason.MIGRATION_RETRY]
    assert [h.actor for h in retried] == ["bob"]

    world.job_outcome = "succeeded"
    world.reach("Healthy")
    assert world.job_creations.count(second) == 1


def test_recorded_migration_job_not_yet_observed_is_waited_for_thirty_seconds() -> None:
    world, _, v2 = v2_world(job_outcome="running")
    world.step(5)
    del world.jobs[v2]

    world.step(29)

    assert world.status.phase is Phase.MIGRATING
    assert world.status.migration is not None
    assert world.status.migration.phase is MigrationPhase.RUNNING
    assert len(world.actions(CreateMigrationJob)) == 2  # v1's and v2's, nothing new


def test_recorded_migration_job_unseen_for_over_thirty_seconds_failed() -> None:
    world, _, v2 = v2_world(job_outcome="running")
    world.step(5)
    del world.jobs[v2]

    world.step(31)

    assert world.status.phase is Phase.MIGRATION_FAILED
    assert world.status.migration is not None
    assert world.status.migration.phase is MigrationPhase.FAILED
    assert world.status.migration.message is not None
    assert "disappeared" in world.status.migration.message
    assert world.status.abort is not None and "disappeared" in world.status.abort.message


def test_owned_job_found_after_a_crash_is_adopted_not_created_again() -> None:
    world, _, v2 = v2_world(job_outcome="running")
    before_crash = world.status
    world.step(5)
    world.status = before_crash  # the status write after creating the Job was lost

    plan = world.step(5)

    assert [a for a in plan.actions if isinstance(a, CreateMigrationJob)] == []
    assert world.job_creations.count(f"payment-migrate-{v2}") == 1
    assert [e.reason for e in plan.events] == [Reason.MIGRATION_ADOPTED]
    assert world.status.migration is not None
    assert world.status.migration.job == f"payment-migrate-{v2}"
    assert world.status.phase is Phase.MIGRATING


def test_job_with_our_name_but_not_ours_is_neither_adopted_nor_created() -> None:
    world, _, v2 = v2_world()
    name = f"payment-migrate-{v2}"
    world.jobs[v2] = JobState(name=name, revision=v2, owned=False, succeeded=True)

    world.run(5)

    assert name not in world.job_creations
    assert world.status.migration is None or world.status.migration.revision != v2
    assert world.status.phase is Phase.DEGRADED
    assert world.status.message is not None and "not owned" in world.status.message
    assert v2 not in world.replica_sets
    assert degraded(world).status == "True"


def test_returning_to_a_revision_migrated_on_retry_does_not_run_it_again() -> None:
    world, _, v2 = v2_world(job_outcome="failed")
    world.reach("MigrationFailed")
    world.job_outcome = "succeeded"
    world.request = ManualRequest(id="retry-1", action=Action.RETRY, by="bob")
    world.reach("Paused")
    v2_spec = world.spec
    world.spec = released(world.spec, "3.0.0")
    world.reach("Paused")

    world.spec = v2_spec
    world.run(20)

    assert world.job_creations.count(f"payment-migrate-{v2}") == 1
    assert world.status.phase is not Phase.MIGRATION_FAILED
