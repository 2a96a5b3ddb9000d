"""decide_fleet: one FleetRollout's next step, from its spec, its status and what the hub saw
of each member cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from rollwise.api.fleet import (
    FleetPhase,
    FleetRolloutSpec,
    FleetRolloutStatus,
)
from rollwise.core.fleet.advance import advance
from rollwise.core.fleet.members import observe_members
from rollwise.core.fleet.model import FleetPlan, MemberObservation
from rollwise.core.fleet.passes import FleetPass, aligned, fresh_status
from rollwise.core.fleet.requests import handle_request
from rollwise.core.fleet.rollback import halt_members, roll_back
from rollwise.core.fleet.status import finish, invalid_fleet
from rollwise.core.fleet.waves import resolve_waves
from rollwise.core.model import ManualRequest
from rollwise.core.reasons import FleetReason


def decide_fleet(
    spec: FleetRolloutSpec,
    status: FleetRolloutStatus,
    members: Mapping[str, MemberObservation],
    now: datetime,
    *,
    generation: int | None = None,
    request: ManualRequest | None = None,
    poll_s: float = 5.0,
) -> FleetPlan:
    """The patches to write, the next status, the Events and when to look again."""
    try:
        layout = resolve_waves(spec)
    except ValueError as err:
        return invalid_fleet(status, str(err), generation, now)
    fresh = status.version != spec.version or status.phase is FleetPhase.INVALID
    base = fresh_status(status, spec, layout) if fresh else aligned(status, spec, layout)
    p = FleetPass(
        spec=spec,
        members=members,
        now=now,
        generation=generation,
        poll_s=poll_s,
        waves=[w.model_copy(deep=True) for w in base.waves],
        status=base,
    )
    if fresh:
        p.set(started_at=now, finished_at=None)
        p.tell(
            FleetReason.STARTED,
            f"rolling {spec.version} to {len(spec.clusters)} clusters in {len(layout)} waves "
            f"({', '.join(f'{w.name}: {len(n)}' for w, n in layout)}); on failure "
            f"{spec.on_failure.value}",
        )
    observe_members(p)
    phase = p.status.phase
    if request is not None and (
        status.last_request is None or status.last_request.id != request.id
    ):
        phase = handle_request(p, request, phase)
    if phase in (
        FleetPhase.PENDING,
        FleetPhase.PROGRESSING,
        FleetPhase.SOAKING,
        FleetPhase.WAITING_FOR_APPROVAL,
    ):
        phase = advance(p)
    if phase is FleetPhase.ROLLING_BACK:
        phase = roll_back(p)
    if phase is FleetPhase.FAILED:
        halt_members(p)
    return finish(p, phase)
