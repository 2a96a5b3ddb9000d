"""Aborts and rollbacks: traffic drained first, the canary scaled down after the delay, the
reason told in status; superseding revisions; the progress deadline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rollwise.api.service_status import Phase
from rollwise.core.model import DeleteReplicaSet, EnsureServices, PlanAction, ScaleReplicaSet
from rollwise.core.reasons import ConditionType, Reason
from rollwise.core.revision import revision_of
from tests.unit.core.world import World, gate_from, healthy_world, released, spec_from

MIGRATION: dict[str, Any] = {
    "template": {"spec": {"containers": [{"name": "migrate", "image": "example/app:1.0.0"}]}}
}


def rollout(spec: Any = None, **rules: Any) -> tuple[World, str, str]:
    """v1 Healthy, then v2 declared with these rules; returns the world and both revisions."""
    world = healthy_world(spec)
    v1 = revision_of(world.spec)
    for name, value in rules.items():
        setattr(world, name, value)
    world.spec = released(world.spec, "2.0.0")
    return world, v1, revision_of(world.spec)


def first_index(world: World, wanted: PlanAction) -> int:
    return world.log.index(wanted)


def test_failed_gate_rolls_back_with_the_measured_value_in_the_reason() -> None:
    world, v1, v2 = rollout(gate_value=0.2)

    world.reach("RollingBack")

    abort = world.status.abort
    assert abort is not None
    assert abort.reason == Reason.GATE_FAILED
    assert abort.revision == v2
    assert "error-rate 0.2 > max 0.05" in abort.message
    assert "at step 3" in abort.message
    assert world.status.canary_weight == 0
    assert world.services == EnsureServices(
        stable_revision=v1, canary_revision=v2, main_revisions=(v1,)
    )
    assert world.replica_sets[v2].replicas == 1  # still there: in-flight requests finish


def test_rolled_back_after_the_scale_down_delay_with_the_canary_at_zero() -> None:
    world, v1, v2 = rollout(gate_value=0.2)
    world.reach("RollingBack")
    aborted_at = world.status.abort.at if world.status.abort else None
    assert aborted_at is not None

    world.reach("RolledBack", advance=1)

    scale_down = next(
        p for p in world.passes if ScaleReplicaSet(revision=v2, replicas=0) in p.plan.actions
    )
    assert scale_down.now >= aborted_at + timedelta(seconds=10)
    assert scale_down.now < aborted_at + timedelta(seconds=12)
    assert world.replica_sets[v2].replicas == 0
    assert world.replica_sets[v1].replicas == 4
    assert world.status.canary_weight == 0
    assert world.status.stable is not None and world.status.stable.revision == v1
    assert world.status.schema_ahead_of_app is False
    assert world.status.abort is not None and world.status.abort.reason == Reason.GATE_FAILED
    degraded = next(c for c in world.status.conditions if c.type == ConditionType.DEGRADED)
    assert (degraded.status, degraded.reason) == ("True", Reason.GATE_FAILED)


def test_rollback_of_a_migrated_revision_says_the_schema_is_ahead() -> None:
    world, _, _ = rollout(spec_from(migration=MIGRATION), gate_value=0.2)

    world.reach("RolledBack")

    assert world.status.schema_ahead_of_app is True
    assert world.status.message is not None and "schema is ahead" in world.status.message
    world.run(10)
    assert world.status.phase is Phase.ROLLED_BACK
    assert world.events().count(Reason.ROLLED_BACK) == 1


def test_drain_comes_before_scale_down_in_every_rollback() -> None:
    world, v1, v2 = rollout(gate_value=0.2)

    world.reach("RolledBack")

    drained = first_index(
        world, EnsureServices(stable_revision=v1, canary_revision=v2, main_revisions=(v1,))
    )
    scaled_down = first_index(world, ScaleReplicaSet(revision=v2, replicas=0))
    assert drained < scaled_down
    drain_pass = next(p for p in world.passes if p.plan.status.phase is Phase.ROLLING_BACK)
    assert all(
        not (isinstance(a, ScaleReplicaSet) and a.revision == v2) for a in drain_pass.plan.actions
    )


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), float("-inf")])
def test_no_data_is_inconclusive_and_aborts_beyond_the_inconclusive_limit(
    value: float | None,
) -> None:
    world, _, _ = rollout(gate_value=value)

    world.reach("RolledBack")

    abort = world.status.abort
    assert abort is not None
    assert abort.reason == Reason.GATE_INCONCLUSIVE
    assert "no data 2 times" in abort.message
    assert Reason.GATE_INCONCLUSIVE in world.events()
    assert Reason.PROMOTED not in world.events()
    results = [r for p in world.passes for r in p.plan.status.analysis if r.measured_at]
    assert results and all(r.value is None for r in results)


def test_no_data_never_passes_a_gate_however_long_it_lasts() -> None:
    world = healthy_world(gates={"error-rate": gate_from(inconclusiveLimit=10_000)})
    world.spec = released(world.spec, "2.0.0")
    world.gate_value = None

    world.run(200, advance=10)

    assert world.status.current_step_index == 2
    # Held: Paused, and says which gate holds it (docs/rollout-semantics.md, rule 2).
    assert world.status.phase is Phase.PAUSED
    assert "error-rate is Inconclusive" in (world.status.message or "")
    assert world.status.analysis[0].verdict == "Inconclusive"
    assert world.status.analysis[0].inconclusive > 100
    assert not any("gate error-rate passed" in m for m in world.messages(Reason.STEP_COMPLETED))


def test_measurement_errors_abort_after_the_consecutive_error_limit() -> None:
    world, _, _ = rollout(gate_error="Prometheus http://prom:9090 unreachable: connection refused")

    world.reach("RollingBack")

    abort = world.status.abort
    assert abort is not None
    assert abort.reason == Reason.GATE_ERROR
    assert "3 times in a row" in abort.message
    assert "connection refused" in abort.message
    assert world.events().count(Reason.GATE_ERROR) == 4  # three measurements, then the abort


def test_an_error_streak_broken_by_a_pass_does_not_abort() -> None:
    world, _, _ = rollout(gate_error="timeout")
    world.until(lambda w: any(r.consecutive_errors == 2 for r in w.status.analysis))
    world.gate_error = None

    world.reach("Healthy")

    assert world.status.abort is None


def test_progress_deadline_aborts_naming_ready_and_wanted_pods() -> None:
    spec = spec_from(strategy={"canary": {"steps": [{"setWeight": 50}]}})
    world, _, v2 = rollout(spec, ready_cap=1)

    world.reach("RollingBack")

    abort = world.status.abort
    assert abort is not None
    assert abort.reason == Reason.PROGRESS_DEADLINE_EXCEEDED
    assert f"canary {v2}: 1/2 pods ready after 120s" in abort.message
    started = world.passes[-1].before.step_started_at
    assert started is not None
    assert abort.at >= started + timedelta(seconds=120)


def test_pods_that_become_ready_before_the_deadline_do_not_abort() -> None:
    spec = spec_from(strategy={"canary": {"steps": [{"setWeight": 50}]}})
    world, _, _ = rollout(spec, pods_ready=False)
    world.run(20)  # 100 s of 120
    world.pods_ready = True

    world.reach("Healthy")

    assert world.status.abort is None


# ----------------------------------------------------------------------------- supersede


def test_new_revision_mid_canary_drains_then_scales_down_then_starts_over() -> None:
    world, v1, v2 = rollout()
    world.reach("Paused")
    world.spec = released(world.spec, "3.0.0")
    v3 = revision_of(world.spec)
    start = len(world.log)

    world.step(1)
    superseding = world.status

    assert superseding.phase is Phase.ROLLING_BACK
    assert superseding.abort is not None and superseding.abort.reason == Reason.SUPERSEDED
    assert v3 in superseding.abort.message
    assert v3 not in world.replica_sets

    world.reach("Healthy")
    tail = world.log[start:]
    drained = tail.index(
        EnsureServices(stable_revision=v1, canary_revision=v2, main_revisions=(v1,))
    )
    v2_down = tail.index(ScaleReplicaSet(revision=v2, replicas=0))
    v3_up = next(
        i for i, a in enumerate(tail) if isinstance(a, ScaleReplicaSet) and a.revision == v3
    )
    # Traffic leaves v2 before v2 shrinks or v3 grows; v2's scale-down and v3's first pods may
    # share a plan once the drain is recorded.
    assert drained < v2_down and drained < v3_up
    assert world.status.stable is not None and world.status.stable.revision == v3
    restarted = [h for h in world.status.history if h.event == Reason.ROLLOUT_STARTED]
    assert restarted[-1].revision == v3 and restarted[-1].step == 0
    world.run(2)
    assert set(world.replica_sets) == {v3}


def test_spec_back_to_stable_mid_canary_rolls_the_canary_away() -> None:
    world, v1, v2 = rollout()
    world.reach("Paused")
    v1_spec = released(world.spec, "1.0.0")
    assert revision_of(v1_spec) == v1
    world.spec = v1_spec

    world.reach("Healthy")
    world.run(2)

    assert world.status.stable is not None and world.status.stable.revision == v1
    assert world.status.canary is None
    assert world.status.abort is None
    assert world.replica_sets[v1].replicas == 4
    assert v2 not in world.replica_sets
    assert DeleteReplicaSet(revision=v2) in world.log
    # The canary's pods go with its ReplicaSet, after the drain (rule 4 of
    # docs/rollout-semantics.md: the phase is not held for it).
    down = first_index(world, DeleteReplicaSet(revision=v2))
    drained = next(
        i
        for i, a in enumerate(world.log)
        if isinstance(a, EnsureServices)
        and a.main_revisions == (v1,)
        and i > first_index(world, ScaleReplicaSet(revision=v2, replicas=1))
    )
    assert drained < down


def test_new_revision_after_a_rollback_starts_a_fresh_rollout() -> None:
    world, _, _ = rollout(gate_value=0.2)
    world.reach("RolledBack")
    world.gate_value = 0.01
    world.spec = released(world.spec, "3.0.0")
    v3 = revision_of(world.spec)

    world.reach("Healthy")

    assert world.status.stable is not None and world.status.stable.revision == v3
    assert world.status.abort is None
