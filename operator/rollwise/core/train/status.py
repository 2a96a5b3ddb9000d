"""The end of a pass: the train's phase, message and conditions; an invalid spec's status."""

from __future__ import annotations

from datetime import datetime

from rollwise.api.train import (
    FailurePolicy,
    MemberPhase,
    TrainPhase,
    TrainStatus,
)
from rollwise.core.checked import checked_update
from rollwise.core.conditions import set_condition
from rollwise.core.reasons import ConditionType, Reason
from rollwise.core.train.passes import DONE, TrainPass, at_text

# ------------------------------------------------------------------ phase, message, conditions


def finish(t: TrainPass) -> None:
    members = t.status.members
    failure = t.status.failure
    before = t.status.phase
    done = sum(1 for m in members if m.phase in DONE)
    if failure is not None:
        rolling = any(m.phase is MemberPhase.ROLLING_BACK for m in members)
        if t.spec.on_failure.policy is FailurePolicy.ROLLBACK_PROMOTED:
            phase = TrainPhase.ROLLING_BACK if rolling else TrainPhase.FAILED
        else:
            phase = TrainPhase.HALTED
        message = failure.message
        if rolling:
            back = [m.service for m in members if m.phase is MemberPhase.ROLLING_BACK]
            message += f"; rolling back {', '.join(back)}"
    elif done == len(members):
        phase, message = TrainPhase.SUCCEEDED, f"all {len(members)} members run their version"
    elif any(m.phase is MemberPhase.PROGRESSING for m in members):
        phase = TrainPhase.PROGRESSING
        flying = [f"{m.service} {m.version}" for m in members if m.phase is MemberPhase.PROGRESSING]
        message = f"{done}/{len(members)} done; rolling out {', '.join(flying)}"
    elif t.status.frozen_until is not None:
        phase = TrainPhase.FROZEN
        message = f"{done}/{len(members)} done; frozen until {at_text(t.status.frozen_until)}"
    else:
        phase = TrainPhase.PROGRESSING if done else TrainPhase.PENDING
        waiting = next((m for m in members if m.phase is MemberPhase.WAITING and m.message), None)
        message = f"{done}/{len(members)} done" + (
            f"; {waiting.service} {waiting.message}" if waiting else ""
        )
    if phase is not before:
        if phase is TrainPhase.SUCCEEDED:
            t.event(Reason.TRAIN_SUCCEEDED, message)
        elif phase is TrainPhase.FAILED:
            t.event(Reason.TRAIN_FAILED, f"{message}; promoted members rolled back", warning=True)
        elif phase is TrainPhase.FROZEN:
            t.event(Reason.TRAIN_FROZEN, message)
    generation = t.observed.generation
    conditions = [c for c in t.status.conditions if c.type != ConditionType.INVALID]
    moving = phase in (
        TrainPhase.PENDING,
        TrainPhase.PROGRESSING,
        TrainPhase.FROZEN,
        TrainPhase.ROLLING_BACK,
    )
    ended_badly = phase in (TrainPhase.HALTED, TrainPhase.FAILED)
    wanted = [
        (ConditionType.READY, phase is TrainPhase.SUCCEEDED),
        (ConditionType.PROGRESSING, moving),
        (ConditionType.DEGRADED, ended_badly),
        (ConditionType.FROZEN, phase is TrainPhase.FROZEN),
        # kstatus (Flux, cli-utils): InProgress while moving, Failed at once when it ended badly
        (ConditionType.RECONCILING, moving),
        (ConditionType.STALLED, ended_badly),
        (ConditionType.INVALID, False),  # last: it was taken out above and comes back here
    ]
    for ctype, value in wanted:
        reason = (
            failure.reason if failure is not None and ctype is ConditionType.DEGRADED else phase
        )
        conditions = set_condition(
            conditions, ctype, value, str(reason), message, generation, t.now
        )
    t.set(phase=phase, message=message, conditions=conditions, observed_generation=generation)


def invalid_status(
    status: TrainStatus, message: str, generation: int, now: datetime
) -> TrainStatus:
    """The stored status with Invalid=True naming what is wrong with the spec; nothing else
    changes (what runs keeps running, no member starts)."""
    conditions = status.conditions
    for ctype, value in (
        (ConditionType.INVALID, True),
        (ConditionType.STALLED, True),  # kstatus: Failed until the spec is fixed
        (ConditionType.RECONCILING, False),
    ):
        conditions = set_condition(
            conditions, ctype, value, Reason.TRAIN_INVALID, message, generation, now
        )
    return checked_update(
        status, {"conditions": conditions, "message": message, "observed_generation": generation}
    )
