"""Supersede and the way back (docs/rollout-semantics.md, rule 4): a newer revision replacing a
canary in flight keeps stable at its size; the spec returned to the stable revision is Healthy
at once; a revision within rollbackWindow skips steps and analysis."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rollwise.api.service_status import Phase
from rollwise.core.model import ScaleReplicaSet
from rollwise.core.reasons import Reason
from rollwise.core.revision import revision_of
from tests.unit.core.world import World, healthy_world, released, spec_from


def paused_at(weight: int, replicas: int = 4, **canary: Any) -> tuple[World, str, str]:
    spec = spec_from(
        replicas=replicas,
        strategy={"canary": {"steps": [{"setWeight": weight}, {"pause": {}}], **canary}},
    )
    world = healthy_world(spec)
    v1 = revision_of(world.spec)
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: w.status.phase is Phase.PAUSED)
    return world, v1, revision_of(world.spec)


def stable_sizes(world: World, revision: str, since: int) -> list[int]:
    return [
        a.replicas
        for a in world.log[since:]
        if isinstance(a, ScaleReplicaSet) and a.revision == revision
    ]


def test_a_superseding_revision_keeps_stable_at_its_size() -> None:
    world, v1, _ = paused_at(25)
    assert world.replica_sets[v1].replicas == 3
    start = len(world.log)

    world.spec = released(world.spec, "3.0.0")
    v3 = revision_of(world.spec)
    world.until(
        lambda w: (
            w.status.phase is Phase.PAUSED
            and w.status.canary is not None
            and w.status.canary.revision == v3
        ),
        passes=40,
    )

    assert stable_sizes(world, v1, start) == []  # 3 all along, never 4
    assert world.replica_sets[v1].replicas == 3
    assert world.replica_sets[v3].replicas == 1


def test_stable_grows_only_to_what_the_next_first_step_needs() -> None:
    world, v1, _ = paused_at(75)
    assert world.replica_sets[v1].replicas == 1
    start = len(world.log)

    world.spec = released(
        world.spec, "3.0.0", strategy={"canary": {"steps": [{"setWeight": 25}, {"pause": {}}]}}
    )
    v3 = revision_of(world.spec)
    world.until(
        lambda w: (
            w.status.canary is not None
            and w.status.canary.revision == v3
            and w.status.phase is Phase.PAUSED
        ),
        passes=40,
    )

    assert max(stable_sizes(world, v1, start)) == 3  # 25% of 4 leaves 3 to stable, not 4


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 99), st.integers(2, 8))
def test_a_supersede_never_asks_stable_for_more_than_the_new_split(
    weight: int, replicas: int
) -> None:
    world, v1, _ = paused_at(weight, replicas)
    have = world.replica_sets[v1].replicas
    start = len(world.log)

    world.spec = released(world.spec, "3.0.0")
    world.until(
        lambda w: (
            w.status.phase is Phase.PAUSED
            and w.status.canary is not None
            and w.status.canary.revision == revision_of(w.spec)
        ),
        passes=60,
    )

    assert all(size <= have for size in stable_sizes(world, v1, start))


# ------------------------------------------------------------------ back to the stable revision


def test_spec_back_to_stable_is_healthy_at_once_under_a_traffic_router() -> None:
    world, v1, v2 = paused_at(25, trafficRouting={"gatewayAPI": {"httpRoute": "payment"}})
    world.spec = released(world.spec, "1.0.0")
    assert revision_of(world.spec) == v1

    world.step(1)

    assert world.status.phase is Phase.HEALTHY
    assert world.router_weight == 0
    assert world.status.canary is None and world.status.abort is None
    assert v2 in world.replica_sets  # its pods go after abortScaleDownDelaySeconds (10 s)
    assert Reason.RETURNED_TO_STABLE in world.events()
    world.run(4, advance=2)
    assert v2 in world.replica_sets
    assert world.status.phase is Phase.HEALTHY
    world.run(2, advance=2)
    assert v2 not in world.replica_sets
    phases = {p.plan.status.phase for p in world.passes[-7:]}
    assert phases == {Phase.HEALTHY}


def test_spec_back_to_stable_under_the_replicas_router_is_healthy_once_stable_is_full() -> None:
    world, v1, v2 = paused_at(25)
    world.spec = released(world.spec, "1.0.0")

    world.step(1)  # stable asked back to 4 pods, the canary still serving beside it
    world.until(lambda w: w.status.phase is Phase.HEALTHY, passes=5, advance=1)

    assert world.replica_sets[v1].replicas == 4
    assert v2 in world.replica_sets and world.status.scale_down_at is not None
    assert world.services is not None and world.services.main_revisions == (v1,)
    world.until(lambda w: v2 not in w.replica_sets, passes=10, advance=2)
    assert world.status.phase is Phase.HEALTHY


# ------------------------------------------------------------------------------ rollbackWindow


def promoted_twice(window: int | None) -> tuple[World, list[str]]:
    extra = {} if window is None else {"rollbackWindow": {"revisions": window}}
    world = healthy_world(spec_from(**extra))
    revisions = [revision_of(world.spec)]
    for version in ("2.0.0", "3.0.0"):
        world.spec = released(world.spec, version)
        revisions.append(revision_of(world.spec))
        world.until(
            lambda w: (
                w.status.phase is Phase.HEALTHY
                and w.status.stable is not None
                and w.status.stable.revision == revisions[-1]
            ),
            passes=80,
        )
    return world, revisions


def test_a_revision_within_the_rollback_window_skips_steps_and_analysis() -> None:
    world, (_, v2, v3) = promoted_twice(window=1)
    assert world.status.previous_stables[:2] == [v2, revision_of(released(world.spec, "1.0.0"))]
    world.gate_value = 0.9  # its gates would fail: none is measured
    start = len(world.passes)

    world.spec = released(world.spec, "2.0.0")
    world.reach("Healthy", passes=10)

    assert world.status.stable is not None and world.status.stable.revision == v2
    assert world.status.full_promotion is not None
    assert world.status.full_promotion.by == "rollwise (rollbackWindow)"
    assert Reason.ROLLBACK_WINDOW in world.events()
    assert all(not p.observed.samples for p in world.passes[start:])
    assert world.status.previous_stables[0] == v3


def test_a_revision_beyond_the_rollback_window_runs_its_steps() -> None:
    world, _ = promoted_twice(window=1)
    world.spec = released(world.spec, "1.0.0")  # stable two promotions ago

    world.step(1)

    assert world.status.phase is not Phase.PROMOTING
    assert world.status.current_step_index == 0
    assert Reason.ROLLBACK_WINDOW not in world.events()


def test_without_a_rollback_window_a_return_runs_its_steps() -> None:
    world, _ = promoted_twice(window=None)
    world.spec = released(world.spec, "2.0.0")

    world.step(1)

    assert world.status.current_step_index == 0
    assert world.status.full_promotion is None
