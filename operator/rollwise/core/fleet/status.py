"""The end of a pass: the fleet's phase, message and conditions, and the plan to apply; an
invalid spec's status.
"""

from __future__ import annotations

from datetime import datetime

from rollwise.api.fleet import (
    HISTORY_LIMIT,
    FleetHistoryEntry,
    FleetMemberPhase,
    FleetMemberStatus,
    FleetPhase,
    FleetRolloutStatus,
)
from rollwise.core.checked import checked_update
from rollwise.core.conditions import set_condition
from rollwise.core.fleet.model import FleetEvent, FleetPlan
from rollwise.core.fleet.passes import FleetPass
from rollwise.core.reasons import FleetConditionType, FleetReason


def invalid_fleet(
    status: FleetRolloutStatus, message: str, generation: int | None, now: datetime
) -> FleetPlan:
    events: tuple[FleetEvent, ...] = ()
    history = list(status.history)
    if status.phase is not FleetPhase.INVALID or status.message != message:
        events = (FleetEvent(FleetReason.INVALID, message, warning=True),)
        history.append(FleetHistoryEntry(at=now, event=FleetReason.INVALID, message=message))
    out = checked_update(
        status,
        {
            "phase": FleetPhase.INVALID,
            "message": message,
            "observed_generation": generation,
            "history": history[-HISTORY_LIMIT:],
        },
    )
    out = _conditions(out, FleetPhase.INVALID, [], generation, now)
    return FleetPlan(status=out, events=events)


def finish(p: FleetPass, phase: FleetPhase) -> FleetPlan:
    unreachable = [m for w in p.waves for m in w.clusters if m.reachable is False]
    message = p.status.message
    if phase in (
        FleetPhase.PROGRESSING,
        FleetPhase.SOAKING,
        FleetPhase.WAITING_FOR_APPROVAL,
        FleetPhase.SUCCEEDED,
        FleetPhase.PENDING,
    ):
        message = _progress_message(p, phase, unreachable)
    status = checked_update(
        p.status,
        {
            "phase": phase,
            "waves": p.waves,
            "message": message,
            "history": [*p.status.history, *p.history][-HISTORY_LIMIT:],
            "observed_generation": p.generation,
        },
    )
    status = _conditions(status, phase, unreachable, p.generation, p.now)
    active = phase in (
        FleetPhase.PENDING,
        FleetPhase.PROGRESSING,
        FleetPhase.SOAKING,
        FleetPhase.ROLLING_BACK,
    )
    requeue: float | None = p.poll_s if active or unreachable else None
    if phase is FleetPhase.WAITING_FOR_APPROVAL:
        requeue = p.poll_s
    if p.wake_time is not None:
        soon = max(0.0, (p.wake_time - p.now).total_seconds())
        requeue = soon if requeue is None else min(requeue, soon)
    return FleetPlan(
        status=status, patches=tuple(p.patches), events=tuple(p.events), requeue_after=requeue
    )


def _progress_message(p: FleetPass, phase: FleetPhase, unreachable: list[FleetMemberStatus]) -> str:
    done = sum(m.phase is FleetMemberPhase.SUCCEEDED for w in p.waves for m in w.clusters)
    total = sum(len(w.clusters) for w in p.waves)
    text = f"{p.spec.version}: {done}/{total} clusters"
    if phase is not FleetPhase.SUCCEEDED and p.status.current_wave:
        text += f", wave {p.status.current_wave} {phase.value}"
    if unreachable:
        text += "; waiting for unreachable " + ", ".join(m.name for m in unreachable)
    return text


def _conditions(
    status: FleetRolloutStatus,
    phase: FleetPhase,
    unreachable: list[FleetMemberStatus],
    generation: int | None,
    now: datetime,
) -> FleetRolloutStatus:
    message = status.message or ""
    active = phase in (
        FleetPhase.PENDING,
        FleetPhase.PROGRESSING,
        FleetPhase.SOAKING,
        FleetPhase.WAITING_FOR_APPROVAL,
        FleetPhase.ROLLING_BACK,
    )
    degraded = phase in (
        FleetPhase.FAILED,
        FleetPhase.ROLLED_BACK,
        FleetPhase.ROLLING_BACK,
        FleetPhase.INVALID,
    )
    # kstatus reads Stalled as Failed at once: a Kustomization waiting on the fleet fails now,
    # not at its timeout. A fleet still rolling back is not there yet (Reconciling).
    stalled = phase in (FleetPhase.FAILED, FleetPhase.ROLLED_BACK, FleetPhase.INVALID)
    if unreachable:
        names = ", ".join(
            f"{m.name} (since {m.unreachable_since.isoformat() if m.unreachable_since else '?'}"
            f"{': ' + m.message if m.message else ''})"
            for m in unreachable
        )
        unreachable_text = f"unreachable: {names}"
    else:
        unreachable_text = "every member cluster answered"
    conditions = list(status.conditions)
    for ctype, value, reason, text in (
        (FleetConditionType.READY, phase is FleetPhase.SUCCEEDED, phase.value, message),
        (FleetConditionType.PROGRESSING, active, phase.value, message),
        (FleetConditionType.DEGRADED, degraded, phase.value, message),
        (FleetConditionType.RECONCILING, active, phase.value, message),
        (FleetConditionType.STALLED, stalled, phase.value, message),
        (
            FleetConditionType.WAITING_FOR_APPROVAL,
            phase is FleetPhase.WAITING_FOR_APPROVAL,
            phase.value,
            message,
        ),
        (
            FleetConditionType.MEMBER_UNREACHABLE,
            bool(unreachable),
            FleetReason.MEMBER_UNREACHABLE if unreachable else FleetReason.MEMBER_REACHABLE,
            unreachable_text,
        ),
    ):
        conditions = set_condition(conditions, ctype, value, reason, text, generation, now)
    return checked_update(status, {"conditions": conditions})
