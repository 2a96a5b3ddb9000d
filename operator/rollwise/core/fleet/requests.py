"""A person's request on the fleet (`kubectl rollwise fleet promote|abort|retry`)."""

from __future__ import annotations

from rollwise.api.fleet import (
    FleetPhase,
    WavePhase,
)
from rollwise.api.service_status import RequestAck
from rollwise.core.fleet.advance import fail
from rollwise.core.fleet.passes import FleetPass
from rollwise.core.model import Action, ManualRequest
from rollwise.core.reasons import FleetReason


def handle_request(p: FleetPass, request: ManualRequest, phase: FleetPhase) -> FleetPhase:
    def ack(result: str, accepted: bool) -> None:
        p.set(
            last_request=RequestAck(
                id=request.id,
                action=request.action.value,
                by=request.by,
                at=p.now,
                result=result,
            )
        )
        p.tell(
            FleetReason.REQUEST_ACCEPTED if accepted else FleetReason.REQUEST_IGNORED,
            f"{request.action.value} by {request.by}: {result}",
            actor=request.by,
            warning=not accepted,
        )

    if request.action is Action.PROMOTE:
        index = next(
            (i for i, w in enumerate(p.waves) if w.phase is WavePhase.WAITING_FOR_APPROVAL), None
        )
        if index is None:
            ack(f"no wave waits for approval (phase {phase})", accepted=False)
            return phase
        p.set_wave(index, approved_by=request.by)
        ack(f"wave {p.waves[index].name} approved", accepted=True)
        p.tell(
            FleetReason.APPROVED,
            f"wave {p.waves[index].name} approved by {request.by}",
            wave=p.waves[index].name,
            actor=request.by,
        )
        return phase
    if request.action is Action.ABORT:
        if phase not in (
            FleetPhase.PENDING,
            FleetPhase.PROGRESSING,
            FleetPhase.SOAKING,
            FleetPhase.WAITING_FOR_APPROVAL,
        ):
            ack(f"nothing to abort in phase {phase}", accepted=False)
            return phase
        ack("fleet aborted", accepted=True)
        return fail(p, None, f"aborted by {request.by}", actor=request.by)
    ack(f"{request.action.value} is not a fleet action (promote or abort)", accepted=False)
    return phase
