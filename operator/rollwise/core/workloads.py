"""Canary and stable at the sizes the current weight asks for, and Services and router pointed
at them: the workload moves that steps, promotion and abort share."""

from __future__ import annotations

from rollwise.api.service import Phase, RevisionStatus
from rollwise.core.passes import Pass
from rollwise.core.replicas import canary_replicas_for, stable_replicas_for


def keep_workloads(p: Pass, revision: str) -> None:
    """Scale canary and stable for the current weight and point the Services/router at them."""
    spec, status = p.spec, p.status
    stable = status.stable
    assert stable is not None and status.current_step_index is not None
    promoting = status.phase is Phase.PROMOTING
    weight = 100 if promoting else status.canary_weight
    replicas_router = spec.strategy.canary.traffic_routing.kind == "replicas"
    canary_n = spec.replicas if promoting else canary_replicas_for(weight, spec.replicas)
    p.scale(revision, canary_n, current=True)
    if not promoting:  # promotion only grows the canary; stable goes once it is fully ready
        stable_n = stable_replicas_for(canary_n, spec.replicas, replicas_router=replicas_router)
        p.scale(stable.revision, stable_n, current=False)
    p.services(stable.revision, revision, include_canary=weight > 0)
    p.router(stable.revision, revision, weight)
    refresh_replicas(p)


def refresh_replicas(p: Pass) -> None:
    """Status shows, for stable and canary, the size asked for in this pass (so the next pass
    reports the same) and the ready pods within it."""
    p.set(stable=_sized(p, p.status.stable), canary=_sized(p, p.status.canary))


def _sized(p: Pass, revision: RevisionStatus | None) -> RevisionStatus | None:
    if revision is None:
        return None
    rs = p.observed.replica_sets.get(revision.revision)
    replicas = p.replicas.get(revision.revision, rs.replicas if rs else 0)
    ready = min(rs.ready_replicas if rs else 0, replicas)
    return revision.model_copy(update={"replicas": replicas, "ready_replicas": ready})
