"""kstatus-style conditions: one function sets one condition, for the core and the controller."""

from __future__ import annotations

from datetime import datetime

from rollwise.api.service_status import Condition, ServiceStatus
from rollwise.core.reasons import ConditionType, Reason


def set_condition(
    conditions: list[Condition],
    ctype: str,
    value: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """`conditions` with one condition set (kept in place, or appended); lastTransitionTime
    moves only when the condition's value does."""
    text = "True" if value else "False"
    previous = next((c for c in conditions if c.type == ctype), None)
    changed_at = (
        previous.last_transition_time if previous is not None and previous.status == text else now
    )
    condition = Condition(
        type=ctype,
        status=text,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=changed_at,
    )
    if previous is None:
        return [*conditions, condition]
    return [condition if c.type == ctype else c for c in conditions]


def with_condition(
    status: ServiceStatus,
    ctype: str,
    value: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> ServiceStatus:
    """`status` with one condition set (see set_condition)."""
    conditions = set_condition(status.conditions, ctype, value, reason, message, generation, now)
    return status.model_copy(update={"conditions": conditions})


def stalled_on_invalid_spec(
    status: ServiceStatus, message: str, generation: int | None, now: datetime
) -> ServiceStatus:
    """A spec the operator cannot act on: InvalidSpec and Stalled True, Reconciling False."""
    why = Reason.INVALID_SPEC
    out = with_condition(status, ConditionType.RECONCILING, False, why, message, generation, now)
    out = with_condition(out, ConditionType.STALLED, True, why, message, generation, now)
    return with_condition(out, ConditionType.INVALID_SPEC, True, why, message, generation, now)
