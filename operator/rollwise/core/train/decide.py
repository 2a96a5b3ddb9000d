"""decide_train: one ReleaseTrain's next step."""

from __future__ import annotations

from datetime import datetime

from rollwise.api.train import (
    TrainSpec,
    TrainStatus,
)
from rollwise.core.train.failure import handle_failure
from rollwise.core.train.members import follow_members, start_members
from rollwise.core.train.model import (
    TrainObserved,
    TrainPlan,
)
from rollwise.core.train.passes import TrainPass
from rollwise.core.train.requests import handle_request, report_invalid_request
from rollwise.core.train.run import start_run
from rollwise.core.train.status import finish


def decide_train(
    spec: TrainSpec, status: TrainStatus, observed: TrainObserved, now: datetime
) -> TrainPlan:
    """The next status, Events, forwarded requests and requeue delay for one ReleaseTrain."""
    t = TrainPass(spec=spec, status=status, observed=observed, now=now)
    report_invalid_request(t)
    if status.observed_generation != observed.generation:
        start_run(t)
    handle_request(t)
    follow_members(t)
    if t.status.failure is not None:
        handle_failure(t)
    else:
        start_members(t)
    finish(t)
    return TrainPlan(
        status=t.status,
        events=tuple(t.events),
        member_requests=tuple(t.requests),
        requeue_after=t.requeue,
    )
