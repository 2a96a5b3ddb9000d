"""Adaptive steps: the canary's weight rises as fast as the evidence allows.

`decide_weight` is the whole policy, a pure function of the step, the weight, the holds so far
and each gate's evidence at this weight: deterministic given the measurements. `adaptive_state`
is the room that gathers the evidence, applies the decision and tells it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from rollwise.api.durations import parse_duration
from rollwise.api.gates import MetricGateSpec, ThresholdRange
from rollwise.api.service import AdaptiveStep
from rollwise.api.service_status import AdaptiveStatus, GateResult, Phase, Verdict
from rollwise.core import gates as gatelib
from rollwise.core.abort import begin_abort
from rollwise.core.analysis import measure_step_gates
from rollwise.core.naming import gate_key, gate_spec_key
from rollwise.core.passes import ACTOR, Pass
from rollwise.core.reasons import Reason
from rollwise.core.workloads import keep_workloads


class Move(StrEnum):
    RAISE = "raise"
    HOLD = "hold"
    COMPLETE = "complete"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Evidence:
    """One gate at the current weight: its verdict, and for a pass its margin (0: at the
    threshold, 1: as far from failing as it gets; None: a pass without a number)."""

    gate: str
    verdict: Verdict
    margin: float | None = None


@dataclass(frozen=True)
class Decision:
    move: Move
    weight: int  # the weight after the decision
    rise: int  # weight - the weight before
    margin: float | None  # the smallest margin of the gates, for a pass
    reason: str


def decide_weight(
    step: AdaptiveStep, weight: int, holds: int, evidence: Sequence[Evidence]
) -> Decision:
    """The next weight. Every gate Passed: at maxWeight the step is complete, else rise by
    minStep + (maxStep - minStep) * (smallest margin), never past maxWeight. Otherwise (a
    failure within the gate's failureLimit, no data, errors): hold, and roll back after maxHolds
    holds. (A gate beyond its own limits rolls the canary back before any decision.)"""
    weight = min(max(weight, step.min_weight), step.max_weight)
    if evidence and all(e.verdict is Verdict.PASSED for e in evidence):
        margin = min((0.0 if e.margin is None else min(1.0, max(0.0, e.margin))) for e in evidence)
        if weight >= step.max_weight:
            return Decision(
                Move.COMPLETE, weight, 0, margin, f"gates passed at maxWeight {weight}%"
            )
        # 1e-9: a margin of 0.8 computed as 0.7999999999 is 0.8.
        rise = step.min_step + math.floor((step.max_step - step.min_step) * margin + 1e-9)
        new = min(step.max_weight, weight + rise)
        return Decision(
            Move.RAISE,
            new,
            new - weight,
            margin,
            f"gates passed with margin {margin:.2f}: {weight}% -> {new}% "
            f"(+{new - weight}, step {step.min_step}..{step.max_step})",
        )
    weak = [f"{e.gate} {e.verdict}" for e in evidence if e.verdict is not Verdict.PASSED]
    if holds >= step.max_holds:
        return Decision(
            Move.ROLLBACK,
            weight,
            0,
            None,
            f"no passing evidence after {holds} holds (maxHolds {step.max_holds}): "
            + ", ".join(weak),
        )
    return Decision(
        Move.HOLD,
        weight,
        0,
        None,
        f"evidence too weak to rise ({', '.join(weak) or 'no gate'}): held at {weight}% "
        f"(hold {holds + 1} of {step.max_holds})",
    )


def threshold_margin(value: float, threshold: ThresholdRange) -> float:
    """How far a passing value is from its threshold, 0..1: relative to the bound for a
    one-sided range (|bound|, or 1 when the bound is 0), to half the width for a two-sided one."""
    low, high = threshold.min, threshold.max
    if low is not None and high is not None:
        half = (high - low) / 2
        if half <= 0:
            return 0.0
        return min(1.0, max(0.0, min(value - low, high - value) / half))
    if high is not None:
        return min(1.0, max(0.0, (high - value) / (abs(high) or 1.0)))
    assert low is not None
    return min(1.0, max(0.0, (value - low) / (abs(low) or 1.0)))


def margin_of(result: GateResult, gspec: MetricGateSpec) -> float | None:
    """A passed gate's margin; None for a Job gate (a pass without a number)."""
    comparison = result.comparison
    if gspec.comparison is not None and comparison is not None and comparison.effect is not None:
        size = gspec.comparison.effect_size
        if size <= 0.5:
            return 1.0 if comparison.effect <= 0.5 else 0.0
        return min(1.0, max(0.0, (size - comparison.effect) / (size - 0.5)))
    if gspec.threshold_range is not None and result.value is not None:
        return threshold_margin(result.value, gspec.threshold_range)
    return None


def start_adaptive(p: Pass, revision: str, index: int, step: AdaptiveStep) -> str:
    """Set an adaptive step going at minWeight; what started, for the Event that tells it."""
    p.set(canary_weight=step.min_weight, adaptive=AdaptiveStatus(step=index))
    keep_workloads(p, revision)
    return (
        f"adaptive step {index + 1}: canary weight set to {step.min_weight}%, rising to "
        f"{step.max_weight}% as {', '.join(g.name for g in step.gates)} allow"
    )


def _evidence(p: Pass, step: AdaptiveStep) -> list[Evidence] | None:
    """Each gate's evidence at this weight; None while a gate has not decided yet (no
    measurement, or a pass short of its count)."""
    out: list[Evidence] = []
    for ref in step.gates:
        key = gate_key(ref.name, ref.cluster, False)
        result = next((r for r in p.status.analysis if r.gate == key and not r.background), None)
        gspec = p.observed.gates.get(gate_spec_key(ref.name, ref.cluster))
        if result is None or gspec is None or result.verdict is None:
            return None
        if result.verdict is Verdict.PASSED:
            if not gatelib.outcome(result, gspec, step_gate=True).passed:
                return None
            out.append(Evidence(ref.name, Verdict.PASSED, margin_of(result, gspec)))
        else:
            out.append(Evidence(ref.name, result.verdict))
    return out


def adaptive_state(p: Pass, revision: str, index: int, step: AdaptiveStep) -> str:
    """ "done" once the gates pass at maxWeight; "wait" otherwise. Called with the pods of
    the current weight ready. Each decision restarts the gates' tallies at the new weight."""
    state = p.status.adaptive
    assert state is not None
    gates = measure_step_gates(p, index, step.gates)
    if gates.breached:
        begin_abort(p, gates.reason, gates.message, actor=ACTOR)
        return "wait"
    since = p.status.step_started_at or p.now
    earliest = since + timedelta(seconds=parse_duration(step.interval))
    evidence = _evidence(p, step)
    if p.now < earliest or evidence is None:
        p.set(
            phase=Phase.PROGRESSING,
            message=f"step {index + 1}: adaptive at {p.status.canary_weight}%, measuring "
            f"{', '.join(g.name for g in step.gates)}",
        )
        if p.now < earliest:
            p.wake_at(earliest)
        return "wait"
    decision = decide_weight(step, p.status.canary_weight, state.holds, evidence)
    state = state.model_copy(
        update={
            "decisions": state.decisions + 1,
            "holds": state.holds + (decision.move is Move.HOLD),
            "last_decision": decision.move.value,
            "last_margin": decision.margin,
            "last_decision_at": p.now,
        }
    )
    p.set(adaptive=state)
    if decision.move is Move.ROLLBACK:
        begin_abort(
            p,
            Reason.GATE_INCONCLUSIVE,
            f"adaptive step {index + 1}: {decision.reason}",
            actor=ACTOR,
        )
        return "wait"
    if decision.move is Move.COMPLETE:
        p.set(adaptive=None)
        return "done"
    # A new weight (or the same one, held): the gates start a fresh tally there.
    p.set(
        canary_weight=decision.weight,
        step_started_at=p.now,
        analysis=[r for r in p.status.analysis if r.background],
    )
    keep_workloads(p, revision)
    measure_step_gates(p, index, step.gates)  # fresh tallies, begun now at the new weight
    raised = decision.move is Move.RAISE
    p.event(
        Reason.ADAPTIVE_RAISED if raised else Reason.ADAPTIVE_HELD,
        f"step {index + 1} (adaptive): {decision.reason}; " + "; ".join(_told(evidence)),
        warning=not raised,
        revision=revision,
        step=index,
        weight=decision.weight,
    )
    p.wake_at(p.now + timedelta(seconds=parse_duration(step.interval)))
    return "wait"


def _told(evidence: list[Evidence]) -> list[str]:
    return [
        f"{e.gate} {e.verdict}" + ("" if e.margin is None else f" margin {e.margin:.2f}")
        for e in evidence
    ]
