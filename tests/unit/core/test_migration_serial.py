"""One migration at a time per service (docs/rollout-semantics.md, rule 5): a newer version's
migration waits for an older version's Job still running (or stops it first, by policy); the
Jobs on the cluster decide, so it holds across operator restarts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rollwise.api.service_status import Phase
from rollwise.core.model import Action, CreateMigrationJob, DeleteJob
from rollwise.core.reasons import Reason
from rollwise.core.revision import revision_of
from tests.unit.core.test_properties import MIGRATION, PROPERTY, Story, stories
from tests.unit.core.world import World, healthy_world, released, spec_from


def migrating_v2(policy: str | None = None) -> tuple[World, str]:
    migration: dict[str, Any] = dict(MIGRATION)
    if policy is not None:
        migration["concurrencyPolicy"] = policy
    world = healthy_world(spec_from(migration=migration))
    world.job_outcome = "running"
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)
    world.until(lambda w: v2 in w.jobs, passes=5)
    world.run(2)
    return world, v2


def running(world: World) -> list[str]:
    return [j.name for j in world.jobs.values() if not (j.succeeded or j.failed)]


def test_a_newer_version_waits_for_the_running_migration_and_says_which_job() -> None:
    world, v2 = migrating_v2()
    old_job = world.jobs[v2].name
    world.spec = released(world.spec, "3.0.0")
    v3 = revision_of(world.spec)

    world.run(20)

    assert v3 not in world.jobs
    assert running(world) == [old_job]
    assert world.status.phase is Phase.MIGRATING
    assert f"waiting for migration Job {old_job}" in (world.status.message or "")
    waits = world.messages(Reason.MIGRATION_WAITING)
    assert len(waits) == 1 and old_job in waits[0]

    world.jobs[v2] = replace(world.jobs[v2], succeeded=True, finished_at=world.now)
    world.job_outcome = "succeeded"
    world.reach("Healthy", passes=60)

    assert world.status.stable is not None and world.status.stable.revision == v3
    created = [a.revision for a in world.actions(CreateMigrationJob)]
    assert created.index(v3) > created.index(v2)


def test_the_wait_holds_across_an_operator_restart() -> None:
    world, _ = migrating_v2()
    world.spec = released(world.spec, "3.0.0")
    world.run(3)

    world.restart()
    world.run(5)

    assert revision_of(world.spec) not in world.jobs
    assert len(running(world)) == 1


def test_replace_stops_the_running_migration_first() -> None:
    world, v2 = migrating_v2(policy="Replace")
    old_job = world.jobs[v2].name
    world.spec = released(world.spec, "3.0.0")
    v3 = revision_of(world.spec)

    world.until(lambda w: v3 in w.jobs, passes=20)

    deletes = world.actions(DeleteJob)
    assert deletes and deletes[0] == DeleteJob(job_name=old_job, foreground=True)
    assert world.log.index(deletes[0]) < next(
        i for i, a in enumerate(world.log) if isinstance(a, CreateMigrationJob) and a.revision == v3
    )
    assert any("stopping migration Job" in m for m in world.messages(Reason.MIGRATION_WAITING))
    assert running(world) == [world.jobs[v3].name]


@st.composite
def release_storms(draw: st.DrawFn) -> Story:
    """Versions released quickly one after another while migrations run, end, fail or are
    deleted, with operator restarts between passes."""
    migration: dict[str, Any] = dict(MIGRATION)
    migration["concurrencyPolicy"] = draw(st.sampled_from(["Wait", "Replace"]))
    world = World(spec=spec_from(migration=migration, abortScaleDownDelaySeconds=0))
    change = st.one_of(
        st.tuples(st.just("release"), st.sampled_from(["1.0.0", "2.0.0", "3.0.0", "4.0.0"])),
        st.tuples(st.just("job_outcome"), st.sampled_from(["running", "succeeded", "failed"])),
        st.tuples(st.just("nothing"), st.none()),
        st.tuples(
            st.just("request"),
            st.tuples(st.sampled_from([Action.RETRY, Action.ABORT]), st.sampled_from("abc")),
        ),
    )
    story = draw(st.lists(st.tuples(change, st.sampled_from([0.0, 1.0, 5.0, 31.0])), max_size=40))
    return Story(world=world, changes=story)


@PROPERTY
@given(st.one_of(stories(), release_storms()))
def test_never_two_migration_jobs_running_at_once(story: Story) -> None:
    for world in story.play():
        assert len(running(world)) <= 1, running(world)
