"""The replicas router's split of pods between canary and stable: both sides keep a pod for
every weight strictly between 0 and 100, the canary count is the closest to the weight, a surge
pod runs only at 1 replica; checked exhaustively over replicas 1..100 and every weight, and
through whole rollouts of decide()."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwise.core.replicas import replica_split
from tests.unit.core.world import World, healthy_world, released, spec_from

ALL_REPLICAS = range(1, 101)
ALL_WEIGHTS = range(0, 101)


def test_both_sides_keep_a_pod_for_every_weight_strictly_between_0_and_100() -> None:
    for replicas in ALL_REPLICAS:
        for weight in range(1, 100):
            canary, stable = replica_split(weight, replicas, surge=1)
            assert canary >= 1 and stable >= 1, (replicas, weight, canary, stable)


def test_no_surge_pod_above_one_replica_and_one_at_one_replica() -> None:
    for replicas in ALL_REPLICAS:
        for weight in ALL_WEIGHTS:
            canary, stable = replica_split(weight, replicas, surge=5)
            extra = 1 if replicas == 1 and 0 < weight < 100 else 0
            assert canary + stable == replicas + extra, (replicas, weight)


def test_canary_count_is_the_closest_allowed_to_the_weight() -> None:
    for replicas in range(2, 101):
        for weight in range(1, 100):
            canary, _ = replica_split(weight, replicas, surge=1)
            best = min(abs(c * 100 - weight * replicas) for c in range(1, replicas))
            assert abs(canary * 100 - weight * replicas) == best, (replicas, weight, canary)


def test_zero_and_one_hundred_put_every_pod_on_one_side() -> None:
    for replicas in ALL_REPLICAS:
        assert replica_split(0, replicas, surge=1) == (0, replicas)
        assert replica_split(100, replicas, surge=1) == (replicas, 0)


@pytest.mark.parametrize(
    ("weight", "replicas", "split"),
    [
        (51, 2, (1, 1)),  # was 2/0: the whole service on a canary under analysis
        (25, 1, (1, 1)),  # was 1/0; a surge pod keeps stable
        (67, 3, (2, 1)),
        (81, 5, (4, 1)),
        (91, 10, (9, 1)),
        (96, 20, (19, 1)),
        (99, 100, (99, 1)),
        (1, 100, (1, 99)),
        (10, 4, (1, 3)),  # 0.4 rounds to 0, held at 1
        (25, 10, (3, 7)),  # 2.5: a tie rounds up
    ],
)
def test_split_at_the_edges_the_issue_measured(
    weight: int, replicas: int, split: tuple[int, int]
) -> None:
    assert replica_split(weight, replicas, surge=1) == split


def test_one_replica_without_surge_takes_the_closer_of_the_two_extremes() -> None:
    assert replica_split(25, 1, surge=0) == (0, 1)
    assert replica_split(49, 1, surge=0) == (0, 1)
    assert replica_split(50, 1, surge=0) == (1, 0)
    assert replica_split(75, 1, surge=0) == (1, 0)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=0, max_value=10),
)
def test_split_is_monotonic_in_weight(lower: int, higher: int, replicas: int, surge: int) -> None:
    lower, higher = sorted((lower, higher))

    small_canary, small_stable = replica_split(lower, replicas, surge)
    large_canary, large_stable = replica_split(higher, replicas, surge)

    assert small_canary <= large_canary
    assert small_stable >= large_stable
    assert small_canary + small_stable <= replicas + max(surge, 0)


def _replicas_world(replicas: int, weight: int, **strategy: Any) -> World:
    spec = spec_from(
        replicas=replicas,
        strategy={"canary": {"steps": [{"setWeight": weight}, {"pause": {}}], **strategy}},
    )
    world = healthy_world(spec)
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: w.status.phase == "Paused")
    return world


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=12), st.integers(min_value=1, max_value=99))
def test_a_rollout_paused_at_a_weight_runs_pods_on_both_sides(replicas: int, weight: int) -> None:
    world = _replicas_world(replicas, weight)

    status = world.status
    assert status.canary is not None and status.stable is not None
    sizes = {r: rs.replicas for r, rs in world.replica_sets.items()}
    assert sizes[status.canary.revision] >= 1
    assert sizes[status.stable.revision] >= 1
    assert (sizes[status.canary.revision], sizes[status.stable.revision]) == replica_split(
        weight, replicas, surge=1
    )


def test_one_replica_with_max_surge_0_takes_no_surge_pod() -> None:
    world = _replicas_world(1, 25, maxSurge=0, maxUnavailable=1)

    status = world.status
    assert status.canary is not None and status.stable is not None
    assert world.replica_sets[status.stable.revision].replicas == 1
    assert status.canary.revision not in world.replica_sets or (
        world.replica_sets[status.canary.revision].replicas == 0
    )
