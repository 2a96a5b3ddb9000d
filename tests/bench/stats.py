"""Pure computations over what was observed: percentiles and step-transition latencies.

Step-transition latency, per canary step i of one rollout (all times epoch seconds):

    latency_i  = written_i - condition_i
    decision_i = decided_i - condition_i

- written_i: when the benchmark's watch received the first status of this rollout whose
  currentStepIndex is past i (or whose stable is the new revision): the status write of the next
  step, as any client sees it.
- decided_i: the `at` of the StepCompleted history entry for step i: the clock reading the
  operator's reconcile pass took at its start (before it observed, measured and wrote).
- condition_i: the moment step i's condition became true, never before the step began
  (entered_i = `at` of StepCompleted i-1, or of RolloutStarted for step 0):
  - setWeight w: max(entered_i, the moment the k-th canary pod was first seen Ready by the
    benchmark's pod watch), k = canary pods for w (`canary_replicas_for`). The watch time is
    used rather than the Ready condition's lastTransitionTime, which has 1 s resolution.
  - pause d: status.pauseStartedAt + d (the operator's own deadline).
  - analysis: the gate's passing measurement time (GateResult.measuredAt, which is the `now`
    of the pass that measured it and completed the step, i.e. decided_i). The analysis
    latency is therefore measure -> status write; how late the measurement came after it was
    due (stepStartedAt + interval) is reported apart as `gate_due_lag`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rollwise.api.durations import parse_duration
from rollwise.core.replicas import canary_replicas_for
from tests.bench.watch import Snap, ts


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), q in 0..100; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, digits)

    return {
        "count": len(values),
        "p50": r(percentile(values, 50)),
        "p90": r(percentile(values, 90)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values) if values else None),
        "min": r(min(values) if values else None),
    }


@dataclass(frozen=True)
class StepTiming:
    service: str
    step: int
    kind: str
    condition: float
    decided: float
    written: float | None
    gate_due_lag: float | None = None

    @property
    def latency(self) -> float | None:
        return None if self.written is None else self.written - self.condition

    @property
    def decision(self) -> float:
        return self.decided - self.condition


def _kind(step: dict[str, Any]) -> str:
    if "setWeight" in step:
        return "setWeight"
    if "pause" in step:
        return "pause"
    return "analysis"


def rollout_revision(status: dict[str, Any]) -> str | None:
    """The revision of the last rollout recorded in history."""
    for entry in reversed(status.get("history") or []):
        if entry.get("event") == "RolloutStarted" and entry.get("revision"):
            return str(entry["revision"])
    return None


def step_timings(
    name: str,
    steps: list[dict[str, Any]],
    replicas: int,
    status: dict[str, Any],
    timeline: Iterable[Snap],
    ready_times: dict[tuple[str, str], list[float]],
    gate_interval_s: float,
) -> list[StepTiming]:
    """The timing of every completed step of this rollout (see the module docstring)."""
    revision = rollout_revision(status)
    if revision is None:
        return []
    history = status.get("history") or []
    started = [i for i, h in enumerate(history) if h.get("event") == "RolloutStarted"][-1]
    completed: dict[int, float] = {}
    for entry in history[started:]:
        if entry.get("event") == "StepCompleted" and entry.get("step") is not None:
            at = ts(entry.get("at"))
            if at is not None:
                completed.setdefault(int(entry["step"]), at)
    rollout_at = ts(history[started].get("at"))
    snaps = [s for s in timeline if s.canary == revision or s.stable == revision]
    ready = ready_times.get((name, revision), [])
    weight = 0
    out: list[StepTiming] = []
    for i, step in enumerate(steps):
        kind = _kind(step)
        if kind == "setWeight":
            weight = int(step["setWeight"])
        decided = completed.get(i)
        entered = rollout_at if i == 0 else completed.get(i - 1)
        if decided is None or entered is None:
            break
        gate_lag = None
        if kind == "setWeight":
            want = canary_replicas_for(weight, replicas)
            if len(ready) < want:
                continue
            condition = max(entered, ready[want - 1])
        elif kind == "pause":
            pause_started = next(
                (s.pause_started_at for s in snaps if s.step == i and s.pause_started_at), entered
            )
            condition = pause_started + parse_duration(step["pause"]["duration"])
        else:
            condition = decided
            gate_lag = decided - (entered + gate_interval_s)
        written = next(
            (
                s.t
                for s in snaps
                if (s.canary == revision and s.step is not None and s.step > i)
                or (s.stable == revision)
            ),
            None,
        )
        out.append(StepTiming(name, i, kind, condition, decided, written, gate_lag))
    return out


def latency_report(timings: list[StepTiming]) -> dict[str, Any]:
    latencies = [t.latency for t in timings if t.latency is not None]
    by_kind: dict[str, Any] = {}
    for kind in ("setWeight", "pause", "analysis"):
        of_kind = [t for t in timings if t.kind == kind]
        by_kind[kind] = {
            "latency_s": summary([t.latency for t in of_kind if t.latency is not None]),
            "decision_s": summary([t.decision for t in of_kind]),
        }
    lags = [t.gate_due_lag for t in timings if t.gate_due_lag is not None]
    return {
        "transitions": len(timings),
        "unobserved_writes": sum(1 for t in timings if t.written is None),
        "negative_latencies": sum(1 for x in latencies if x < 0),
        "latency_s": summary(latencies),
        "decision_s": summary([t.decision for t in timings]),
        "by_kind": by_kind,
        "gate_due_lag_s": summary(lags),
    }


def repeated_steps(status: dict[str, Any]) -> int:
    """StepCompleted entries beyond one per step index, plus RolloutStarted beyond one, in the
    (bounded) history of one ProgressiveService's last rollout."""
    history = status.get("history") or []
    steps = Counter(
        h.get("step")
        for h in history
        if h.get("event") == "StepCompleted" and h.get("step") is not None
    )
    starts = sum(1 for h in history if h.get("event") == "RolloutStarted")
    return sum(c - 1 for c in steps.values() if c > 1) + max(0, starts - 1)
