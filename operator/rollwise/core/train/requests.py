"""A person's request on the train (`kubectl rollwise train promote|abort|retry`), and one
that cannot be read.
"""

from __future__ import annotations

from rollwise.api.service_status import RequestAck
from rollwise.api.train import (
    MemberPhase,
    TrainFailure,
    TrainPhase,
)
from rollwise.core.model import Action, ManualRequest
from rollwise.core.reasons import Reason
from rollwise.core.train.model import (
    MemberRequest,
)
from rollwise.core.train.passes import SETTLED_TRAIN, TrainPass
from rollwise.core.train.run import start_run


def report_invalid_request(t: TrainPass) -> None:
    error = t.observed.request_error
    if error and t.status.invalid_request != error:
        t.event(Reason.REQUEST_INVALID, error, warning=True)
    t.set(invalid_request=error)


def _ack(t: TrainPass, request: ManualRequest, result: str, accepted: bool) -> None:
    t.set(
        last_request=RequestAck(
            id=request.id, action=request.action.value, by=request.by, at=t.now, result=result
        )
    )
    t.event(
        Reason.REQUEST_ACCEPTED if accepted else Reason.REQUEST_IGNORED,
        f"{request.action.value} by {request.by}: {result}",
        actor=request.by,
        warning=not accepted,
    )


def handle_request(t: TrainPass) -> None:
    """promote: forwarded to every member in flight; abort: the run fails as by a member;
    retry: a halted or failed run starts again. Each request id is acted on once."""
    request = t.observed.request
    if request is None or (t.status.last_request and t.status.last_request.id == request.id):
        return
    phase = t.status.phase
    if request.action is Action.ABORT:
        if t.status.failure is None and phase not in SETTLED_TRAIN:
            message = f"aborted by {request.by}"
            t.set(failure=TrainFailure(reason=Reason.TRAIN_ABORTED, message=message, at=t.now))
            t.event(Reason.TRAIN_ABORTED, message, warning=True, actor=request.by)
            _ack(t, request, "the run is halted", True)
        else:
            _ack(t, request, f"nothing to abort in phase {phase}", False)
    elif request.action is Action.PROMOTE:
        in_flight = [m.service for m in t.status.members if m.phase is MemberPhase.PROGRESSING]
        if in_flight and t.status.failure is None:
            for i, service in enumerate(in_flight):
                t.requests.append(
                    MemberRequest(
                        service=service,
                        action=Action.PROMOTE,
                        id=f"{request.id[:56]}-{i}",
                        by=f"{request.by} (train {t.observed.name})",
                    )
                )
            _ack(t, request, f"promote sent to {', '.join(in_flight)}", True)
        else:
            _ack(t, request, f"no member in flight to promote in phase {phase}", False)
    elif request.action is Action.RETRY and phase in (TrainPhase.HALTED, TrainPhase.FAILED):
        _ack(t, request, "the run starts again", True)
        start_run(t)
    else:
        _ack(t, request, f"a train cannot {request.action.value} in phase {phase}", False)
