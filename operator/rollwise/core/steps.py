"""The steps room: set each canary step going (weight, pause clock, gates), tell when it is
complete, and move to the next one; after the last step, promotion."""

from __future__ import annotations

from rollwise.api.durations import parse_duration
from rollwise.api.service import CanaryStep
from rollwise.api.service_status import Phase
from rollwise.core.abort import begin_abort
from rollwise.core.adaptive import adaptive_state, start_adaptive
from rollwise.core.analysis import hold_for_inconclusive, measure_step_gates, passed_gates
from rollwise.core.model import Action
from rollwise.core.passes import ACTOR, WATCH_FALLBACK_S, Pass, seconds
from rollwise.core.promotion import begin_promotion, promote
from rollwise.core.reasons import Reason
from rollwise.core.requests import ack, pending_request
from rollwise.core.workloads import at_targets, keep_workloads, targets


def steps_of(p: Pass) -> list[CanaryStep]:
    return p.spec.strategy.canary.steps


def step_kind(step: CanaryStep) -> str:
    if step.set_weight is not None:
        return "setWeight"
    if step.set_mirror is not None:
        return "setMirror"
    if step.pause is not None:
        return "pause"
    if step.adaptive is not None:
        return "adaptive"
    return "analysis"


def advance(p: Pass, revision: str) -> None:
    """Complete as many steps as are complete now, then set up the current one."""
    steps = steps_of(p)
    for _ in range(len(steps) + 1):
        index = p.status.current_step_index
        assert index is not None
        if index >= len(steps):
            promote(p, revision)
            return
        state = _step_state(p, revision, index, steps[index])
        if state == "wait":
            return
        if state == "done":
            if hold_for_inconclusive(p):
                return
            complete_step(p, index, steps[index])


def complete_step(p: Pass, index: int, step: CanaryStep, by: str | None = None) -> None:
    """Complete a step and set the next one going (or promotion). One Event and one history
    entry tell both: what completed it (the gate results of an analysis step) and what started."""
    canary = p.status.canary
    assert canary is not None
    done = f"step {index + 1}/{len(steps_of(p))} ({step_kind(step)}) completed"
    if by is not None:
        done += f" by {by}"
    elif step.analysis is not None and (passed := passed_gates(p, step.analysis.gates)):
        done += ": " + "; ".join(passed)
    p.set(
        current_step_index=index + 1,
        step_started_at=p.now,
        pause_started_at=None,
        phase=Phase.PROGRESSING,
        # Step gates of the finished step leave status; background gates stay.
        analysis=[r for r in p.status.analysis if r.background],
        adaptive=None,
    )
    starts = start_step(p, canary.revision, index + 1)
    p.event(
        Reason.STEP_COMPLETED,
        f"{done}; {starts}",
        actor=by or ACTOR,
        revision=canary.revision,
        step=index,
        weight=p.status.canary_weight,
    )


def start_step(p: Pass, revision: str, index: int) -> str:
    """Set step `index` going (its weight, its pause clock), or promotion after the last step;
    what started, for the Event of the transition that started it (it has no Event of its own)."""
    steps = steps_of(p)
    if index >= len(steps):
        return begin_promotion(p, revision)[1]
    step = steps[index]
    if step.set_weight is not None:
        p.set(canary_weight=step.set_weight)
        keep_workloads(p, revision)
        return f"canary weight set to {step.set_weight}%"
    if step.set_mirror is not None:
        p.set(mirror_percent=step.set_mirror)
        keep_workloads(p, revision)
        return _mirror_set(step.set_mirror)
    if step.adaptive is not None:
        return start_adaptive(p, revision, index, step.adaptive)
    if step.pause is not None:
        p.set(pause_started_at=p.now)
        if step.pause.duration is None:
            return f"step {index + 1} pauses until `kubectl rollwise promote`"
        return f"step {index + 1} pauses for {step.pause.duration}"
    assert step.analysis is not None
    gates = ", ".join(ref.name for ref in step.analysis.gates)
    return f"step {index + 1} measures {gates}"


def _step_state(p: Pass, revision: str, index: int, step: CanaryStep) -> str:
    """ "done" when the step's condition is met, "skipped" when a promote request completed it,
    "wait" otherwise."""
    request = pending_request(p)
    status = p.status
    if step.set_weight is not None and status.canary_weight != step.set_weight:
        p.set(canary_weight=step.set_weight)
        keep_workloads(p, revision)
        p.event(
            Reason.WEIGHT_SET,
            f"canary weight set to {step.set_weight}%",
            step=index,
            weight=step.set_weight,
        )
    if step.set_mirror is not None and status.mirror_percent != step.set_mirror:
        p.set(mirror_percent=step.set_mirror)
        keep_workloads(p, revision)
        p.event(Reason.MIRROR_SET, _mirror_set(step.set_mirror), step=index)
    adaptive = step.adaptive
    if adaptive is not None and (status.adaptive is None or status.adaptive.step != index):
        start_adaptive(p, revision, index, adaptive)  # a step begun by an older operator
    sizes_canary = step.set_weight is not None or step.set_mirror is not None
    if sizes_canary and not status.paused_by_request:
        return "done" if _pods_ready(p, revision, index) else "wait"
    if request is not None and request.action is Action.PROMOTE:
        ack(p, request, f"step {index + 1} ({step_kind(step)}) completed by request")
        p.set(paused_by_request=False)
        complete_step(p, index, step, by=request.by)
        return "skipped"
    if status.paused_by_request:
        p.set(
            phase=Phase.PAUSED,
            message=f"paused by request at step {index + 1}; "
            "`kubectl rollwise resume` or `promote` continues",
        )
        return "wait"
    if step.pause is not None:
        started = status.pause_started_at
        if started is None:
            started = p.now
            p.set(pause_started_at=started)
        if step.pause.duration is None:
            p.set(
                phase=Phase.PAUSED,
                message=f"step {index + 1}: paused until `kubectl rollwise promote`",
            )
            return "wait"
        deadline = started + seconds(parse_duration(step.pause.duration))
        if p.now >= deadline:
            return "done"
        p.set(phase=Phase.PAUSED, message=f"step {index + 1}: pause until {deadline.isoformat()}")
        p.wake_at(deadline)
        return "wait"
    if adaptive is not None:
        if not _pods_ready(p, revision, index):
            return "wait"
        return adaptive_state(p, revision, index, adaptive)
    assert step.analysis is not None
    gates = measure_step_gates(p, index, step.analysis.gates)
    if gates.breached:
        begin_abort(p, gates.reason, gates.message, actor=ACTOR)
    elif not gates.passed:
        hold_for_inconclusive(p)  # the step waits either way; Paused says why
    return "done" if gates.passed else "wait"


def _mirror_set(percent: int) -> str:
    if percent == 0:
        return "mirroring to the canary stopped"
    return f"{percent}% of stable's requests mirrored to the canary (responses discarded)"


def _pods_ready(p: Pass, revision: str, index: int) -> bool:
    """The pods for this weight are there and the canary's are ready; past
    progressDeadlineSeconds, abort."""
    spec, status = p.spec, p.status
    if at_targets(p, revision):
        return True
    want, _ = targets(p)
    rs = p.observed.replica_sets.get(revision)
    # Ready pods within the size asked for in this pass, so deciding again says the same.
    ready = min(rs.ready_replicas, p.asked(revision)) if rs else 0
    started = status.step_started_at or p.now
    deadline = started + seconds(spec.progress_deadline_seconds)
    if p.now >= deadline:
        begin_abort(
            p,
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            f"canary {revision}: {ready}/{want} pods ready after "
            f"{spec.progress_deadline_seconds}s at step {index + 1}"
            + (f": {rs.not_ready}" if rs and rs.not_ready else ""),
            actor=ACTOR,
        )
        return False
    p.set(
        phase=Phase.PROGRESSING,
        message=f"step {index + 1}: waiting for canary pods, {ready}/{want} ready",
    )
    p.wake_in(min(WATCH_FALLBACK_S, (deadline - p.now).total_seconds()))
    return False
