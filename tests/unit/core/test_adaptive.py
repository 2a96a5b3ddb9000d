"""Adaptive steps: the weight rises by the gates' margin, holds on weak evidence, rolls back
on a breach or when evidence never comes; the decision is a pure function (hypothesis
properties: monotone while passing, bounded by maxWeight and maxStep, bounded in decisions)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rollwise.api.gates import ThresholdRange
from rollwise.api.service import AdaptiveStep
from rollwise.api.service_status import Phase, Verdict
from rollwise.core.adaptive import Evidence, Move, decide_weight, threshold_margin
from rollwise.core.reasons import Reason
from tests.unit.core.world import World, gate_from, healthy_world, released, spec_from


def adaptive(**fields: Any) -> AdaptiveStep:
    wire = {
        "minWeight": 10,
        "maxWeight": 50,
        "minStep": 5,
        "maxStep": 25,
        "interval": "30s",
        "maxHolds": 2,
        "gates": [{"name": "error-rate"}],
    }
    return AdaptiveStep.model_validate(wire | fields)


def passed(margin: float | None) -> list[Evidence]:
    return [Evidence("error-rate", Verdict.PASSED, margin)]


# ----------------------------------------------------------------------------- the API


def test_a_range_upside_down_is_refused() -> None:
    with pytest.raises(ValidationError, match="minWeight must not exceed maxWeight"):
        adaptive(minWeight=60)
    with pytest.raises(ValidationError, match="minStep must not exceed maxStep"):
        adaptive(minStep=30)


# ----------------------------------------------------------------------------- the decision


def test_full_margin_rises_by_max_step_and_none_by_min_step() -> None:
    step = adaptive()

    assert decide_weight(step, 10, 0, passed(1.0)).weight == 35
    assert decide_weight(step, 10, 0, passed(0.0)).weight == 15
    assert decide_weight(step, 10, 0, passed(None)).weight == 15  # a pass without a number


def test_the_rise_stops_at_max_weight_and_a_pass_there_completes() -> None:
    step = adaptive()

    near = decide_weight(step, 45, 0, passed(1.0))
    there = decide_weight(step, 50, 0, passed(1.0))

    assert (near.move, near.weight, near.rise) == (Move.RAISE, 50, 5)
    assert there.move is Move.COMPLETE and there.weight == 50


def test_weak_evidence_holds_then_rolls_back_after_max_holds() -> None:
    step = adaptive(maxHolds=2)
    weak = [Evidence("error-rate", Verdict.INCONCLUSIVE)]

    assert decide_weight(step, 30, 0, weak).move is Move.HOLD
    assert decide_weight(step, 30, 1, weak).move is Move.HOLD
    last = decide_weight(step, 30, 2, weak)
    assert last.move is Move.ROLLBACK and "after 2 holds" in last.reason


def test_one_weak_gate_holds_even_when_another_passes_with_margin() -> None:
    evidence = [
        Evidence("error-rate", Verdict.PASSED, 1.0),
        Evidence("latency", Verdict.ERROR),
    ]

    decision = decide_weight(adaptive(), 20, 0, evidence)

    assert (decision.move, decision.weight) == (Move.HOLD, 20)
    assert "latency Error" in decision.reason


@pytest.mark.parametrize(
    ("value", "threshold", "margin"),
    [
        (0.01, {"max": 0.05}, 0.8),
        (0.05, {"max": 0.05}, 0.0),
        (0.0, {"max": 0.0}, 0.0),
        (0.99, {"min": 0.9}, 0.1),
        (50, {"min": 0, "max": 100}, 1.0),
        (90, {"min": 0, "max": 100}, 0.2),
    ],
)
def test_threshold_margin_is_the_distance_to_failing(
    value: float, threshold: dict[str, float], margin: float
) -> None:
    assert threshold_margin(value, ThresholdRange.model_validate(threshold)) == pytest.approx(
        margin
    )


steps = st.builds(
    lambda lo, span, smin, sextra, holds: AdaptiveStep(
        min_weight=lo,
        max_weight=min(100, lo + span),
        min_step=smin,
        max_step=min(100, smin + sextra),
        max_holds=holds,
        gates=[{"name": "g"}],  # type: ignore[list-item]
    ),
    st.integers(1, 100),
    st.integers(0, 99),
    st.integers(1, 50),
    st.integers(0, 50),
    st.integers(0, 10),
)
margins = st.one_of(st.none(), st.floats(min_value=-1, max_value=2, allow_nan=False))
verdicts = st.sampled_from(list(Verdict))
rounds = st.lists(st.lists(st.tuples(verdicts, margins), min_size=1, max_size=3), max_size=80)


def run(step: AdaptiveStep, evidence_rounds: list[list[tuple[Verdict, float | None]]]) -> list[Any]:
    """Decisions from minWeight on, one per round of evidence, until complete or rollback."""
    weight, holds, decisions = step.min_weight, 0, []
    for round_ in evidence_rounds:
        evidence = [Evidence(f"g{i}", v, m) for i, (v, m) in enumerate(round_)]
        decision = decide_weight(step, weight, holds, evidence)
        assert decision == decide_weight(step, weight, holds, evidence)  # deterministic
        decisions.append((weight, decision, evidence))
        if decision.move in (Move.COMPLETE, Move.ROLLBACK):
            break
        holds += decision.move is Move.HOLD
        weight = decision.weight
    return decisions


@settings(max_examples=300, deadline=None)
@given(steps, rounds)
def test_weight_never_falls_never_passes_max_and_never_rises_more_than_max_step(
    step: AdaptiveStep, evidence_rounds: list[list[tuple[Verdict, float | None]]]
) -> None:
    for before, decision, evidence in run(step, evidence_rounds):
        assert step.min_weight <= decision.weight <= step.max_weight
        assert decision.weight >= before
        assert decision.rise == decision.weight - before <= step.max_step
        if decision.move is Move.RAISE:
            assert all(e.verdict is Verdict.PASSED for e in evidence)
            assert decision.rise >= min(step.min_step, step.max_weight - before)


@settings(max_examples=300, deadline=None)
@given(steps, rounds)
def test_the_step_ends_within_a_bounded_number_of_decisions(
    step: AdaptiveStep, evidence_rounds: list[list[tuple[Verdict, float | None]]]
) -> None:
    """Rises are at least minStep and holds at most maxHolds, so the step completes or rolls
    back within ceil((max - min) / minStep) + maxHolds + 1 decisions of `interval` each."""
    bound = math.ceil((step.max_weight - step.min_weight) / step.min_step) + step.max_holds + 1
    decisions = run(step, evidence_rounds + [[(Verdict.INCONCLUSIVE, None)]] * (bound + 1))

    assert decisions[-1][1].move in (Move.COMPLETE, Move.ROLLBACK)
    assert len(decisions) <= bound


@settings(max_examples=200, deadline=None)
@given(steps, st.integers(0, 100), st.floats(0, 1), st.floats(0, 1))
def test_more_margin_never_rises_less(step: AdaptiveStep, at: int, low: float, high: float) -> None:
    low, high = sorted((low, high))
    weight = min(max(at, step.min_weight), step.max_weight)

    assert decide_weight(step, weight, 0, passed(high)).rise >= (
        decide_weight(step, weight, 0, passed(low)).rise
    )


# ----------------------------------------------------------------------------- rollouts


def adaptive_world(
    value: float | None, error: str | None = None, inconclusive_limit: int = 1, **fields: Any
) -> World:
    steps = [{"adaptive": adaptive(**fields).to_wire()}]
    gate = gate_from(
        interval="10s",
        count=1,
        thresholdRange={"max": 0.05},
        inconclusiveLimit=inconclusive_limit,
    )
    world = healthy_world(
        spec_from(strategy={"canary": {"steps": steps}}), gates={"error-rate": gate}
    )
    world.gate_value, world.gate_error = value, error
    world.spec = released(world.spec, "2.0.0")
    return world


def raises(world: World) -> list[str]:
    return world.messages(Reason.ADAPTIVE_RAISED)


def test_a_healthy_canary_rises_fast_and_every_decision_is_in_history() -> None:
    world = adaptive_world(0.01)  # margin 0.8: +21 a decision

    world.reach("Healthy", passes=100)

    told = raises(world)
    assert len(told) == 2
    assert "gates passed with margin 0.80: 10% -> 31% (+21, step 5..25)" in told[0]
    assert "31% -> 50% (+19" in told[1]
    assert "error-rate Passed margin 0.80" in told[0]
    before_promotion = [
        p.plan.status.canary_weight
        for p in world.passes
        if p.plan.status.phase in (Phase.PROGRESSING, Phase.PAUSED)
    ]
    assert max(before_promotion) == 50
    history = [h for h in world.status.history if h.event == Reason.ADAPTIVE_RAISED]
    assert [h.weight for h in history] == [31, 50]


def test_a_canary_near_its_threshold_rises_by_min_step() -> None:
    world = adaptive_world(0.049)  # margin 0.02: +5 a decision

    world.reach("Healthy", passes=300)

    assert len(raises(world)) == 8  # 10 -> 15 -> ... -> 50


def test_no_data_beyond_the_gates_own_limit_rolls_back_before_any_decision() -> None:
    world = adaptive_world(None, inconclusive_limit=1)

    world.reach("RollingBack")

    assert world.status.abort is not None
    assert world.status.abort.reason == Reason.GATE_INCONCLUSIVE
    assert world.messages(Reason.ADAPTIVE_HELD) == raises(world) == []


def test_a_canary_beyond_its_threshold_is_rolled_back_without_rising() -> None:
    world = adaptive_world(0.2)

    world.reach("RollingBack")

    assert world.status.abort is not None and world.status.abort.reason == Reason.GATE_FAILED
    assert raises(world) == []
    assert world.status.canary_weight == 0


def test_a_canary_without_evidence_holds_then_rolls_back() -> None:
    world = adaptive_world(None, inconclusive_limit=10)  # the gate's limit is not reached

    world.reach("RollingBack", passes=200)

    held = world.messages(Reason.ADAPTIVE_HELD)
    assert len(held) == 2 and "held at 10%" in held[0]
    abort = world.status.abort
    assert abort is not None and abort.reason == Reason.GATE_INCONCLUSIVE
    assert "after 2 holds" in abort.message
    assert world.status.phase is Phase.ROLLING_BACK


def test_a_comparison_gates_margin_is_how_far_its_effect_is_from_failing() -> None:
    from rollwise.api.gates import MetricGateSpec
    from rollwise.api.service_status import ComparisonResult, GateResult
    from rollwise.core.adaptive import margin_of

    gate = MetricGateSpec.model_validate(
        {
            "provider": {
                "prometheus": {"address": "http://p:9090", "query": 'x{r="{{revision}}"}'}
            },
            "comparison": {"window": "5m", "step": "15s", "effectSize": 0.7},
        }
    )

    def margin(effect: float) -> float | None:
        result = GateResult(gate="g", comparison=ComparisonResult(effect=effect))
        return margin_of(result, gate)

    assert margin(0.3) == 1.0  # the canary better than stable
    assert margin(0.5) == 1.0
    assert margin(0.6) == pytest.approx(0.5)
    assert margin(0.7) == 0.0
