"""Canary and stable at the sizes the current weight asks for, and Services and router pointed
at them: the workload moves that steps, promotion and abort share.

Under the replicas router the pod ratio is the weight, so every move of pods between the two
revisions is bounded by maxSurge/maxUnavailable (promotion and abort lose no ready pod at all).
A traffic router splits requests, not pods: the canary runs beside a full stable, so only an
abort waits there (for ready stable pods before any canary pod goes).
"""

from __future__ import annotations

from rollwise.api.routing import RouterKind
from rollwise.api.service_status import Phase, RevisionStatus
from rollwise.core.passes import Pass
from rollwise.core.replicas import (
    Side,
    canary_replicas_for,
    move_bounds,
    next_sizes,
    replica_split,
    stable_replicas_for,
)


def replicas_router(p: Pass) -> bool:
    """The weight is the canary's share of pods (a blue-green never splits pods: both full)."""
    strategy = p.spec.strategy
    return (
        strategy.blue_green is None and strategy.canary.traffic_routing.kind is RouterKind.REPLICAS
    )


def targets(p: Pass) -> tuple[int, int]:
    """(canary, stable) sizes the current weight asks for; promotion asks all for the canary.

    Under the replicas router the pod ratio is the traffic split (`replica_split`: both sides
    keep a pod for any weight strictly between 0 and 100, closest rounding, a surge pod at 1
    replica). A traffic router splits requests, so the canary is capacity beside a full stable,
    rounded up; mirrored copies are load too: it is sized for the larger of weight and mirror."""
    replicas = p.spec.replicas
    if p.spec.strategy.blue_green is not None:
        return replicas, replicas  # the preview at full size beside a full active revision
    if p.status.phase is Phase.PROMOTING:
        canary = replicas
    elif replicas_router(p):
        strategy = p.spec.strategy.canary
        surge, _ = move_bounds(strategy.max_surge, strategy.max_unavailable, replicas)
        return replica_split(p.status.canary_weight, replicas, surge)
    else:
        share = max(p.status.canary_weight, p.status.mirror_percent)
        canary = canary_replicas_for(share, replicas)
    return canary, stable_replicas_for(canary, replicas, replicas_router=replicas_router(p))


def keep_workloads(p: Pass, revision: str) -> None:
    """Scale canary and stable towards the current weight and point the Services/router at
    them."""
    stable = p.status.stable
    assert stable is not None and p.status.current_step_index is not None
    promoting = p.status.phase is Phase.PROMOTING
    weight = 100 if promoting else p.status.canary_weight
    mirror = 0 if promoting else p.status.mirror_percent
    canary_want, stable_want = targets(p)
    canary_n, stable_n = canary_want, stable_want
    if replicas_router(p):
        canary_side = _side(p, revision, canary_want)
        stable_side = _side(p, stable.revision, stable_want)
        # Promotion never lets ready pods drop below replicas: stable goes only as the
        # canary's pods that replace it are ready.
        strict = p.status.phase is Phase.PROMOTING
        if canary_side.want >= canary_side.have:
            canary_n, stable_n = _move(p, canary_side, stable_side, strict=strict)
        else:
            stable_n, canary_n = _move(p, stable_side, canary_side, strict=strict)
    p.scale(revision, canary_n, current=True)
    p.scale(stable.revision, stable_n, current=False)
    p.services(stable.revision, revision, include_canary=weight > 0)
    p.router(stable.revision, revision, weight, mirror)
    refresh_replicas(p)


def at_targets(p: Pass, revision: str) -> bool:
    """The canary is asked for and ready at its target size, and (replicas router) stable is
    asked for at its own: the step's weight is what the pods really are."""
    canary_want, stable_want = targets(p)
    rs = p.observed.replica_sets.get(revision)
    ready = rs.ready_replicas if rs else 0
    # The size asked for in this pass counts: a scale-down completes as soon as it is asked,
    # with its remaining pods ready; a scale-up waits for the new pods.
    have = p.asked(revision)
    if have != canary_want or ready < canary_want:
        return False
    stable = p.status.stable
    if not replicas_router(p) or stable is None:
        return True
    return p.asked(stable.revision) == stable_want


def restore_stable(p: Pass, *, release_canary: bool, stable_size: int | None = None) -> int:
    """Abort: stable back to full size within maxSurge; the canary held where it is, or, once
    released, shrunk only as far as ready stable pods replace it (no canary pod goes before
    its stable replacement is ready). The canary size asked for.

    `stable_size` (a supersede): stable goes to that size instead of full, and the released
    canary goes at once: the next canary takes its place, so no stable pod replaces it."""
    stable, canary = p.status.stable, p.status.canary
    assert stable is not None and canary is not None
    held = _side(p, canary.revision, 0)
    canary_side = held if release_canary else Side(held.have, held.ready, held.have)
    want = p.spec.replicas if stable_size is None else stable_size
    stable_n, canary_n = _move(p, _side(p, stable.revision, want), canary_side, strict=True)
    if stable_size is not None and release_canary:
        canary_n = 0
    p.scale(stable.revision, stable_n, current=False)
    if release_canary:
        p.scale(canary.revision, canary_n, current=False)
    else:
        p.hold(canary.revision)  # any canary growth planned earlier in this pass is dropped
    refresh_replicas(p)
    return canary_n


def stable_size_for_next_canary(p: Pass) -> int:
    """A supersede keeps stable at its size: the pods it has now, or, if that is fewer, the pods
    the new revision's first step asks of it (its canary takes over the old canary's share)."""
    stable = p.status.stable
    assert stable is not None
    rs = p.observed.replica_sets.get(stable.revision)
    have = rs.replicas if rs else 0
    replicas = p.spec.replicas
    if not replicas_router(p):
        return replicas  # a traffic router runs a full stable all along
    first = p.spec.strategy.canary.steps[0]
    strategy = p.spec.strategy.canary
    surge, _ = move_bounds(strategy.max_surge, strategy.max_unavailable, replicas)
    _, first_stable = replica_split(first.set_weight or 0, replicas, surge)
    return min(replicas, max(have, first_stable))


def stable_covers(p: Pass) -> tuple[bool, int, int]:
    """Abort under the replicas router: may the canary leave the Service yet? Only once
    stable's ready pods cover replicas-maxUnavailable, or all the stable pods that can be asked
    for while the canary is still held (maxSurge bounds them), whichever is fewer: draining
    earlier would leave the Service with fewer pods than the spec allows, at 100% weight with
    none at all. A traffic router runs a full stable, so it always covers. (covers, ready,
    needed)."""
    stable = p.status.stable
    assert stable is not None
    rs = p.observed.replica_sets.get(stable.revision)
    asked = p.asked(stable.revision)
    ready = min(rs.ready_replicas if rs else 0, asked)
    if not replicas_router(p):
        return True, ready, 0
    strategy = p.spec.strategy.canary
    _, missing = move_bounds(strategy.max_surge, strategy.max_unavailable, p.spec.replicas)
    needed = min(max(0, p.spec.replicas - missing), asked)
    return ready >= needed, ready, needed


def refresh_replicas(p: Pass) -> None:
    """Status shows, for stable and canary, the size asked for in this pass (so the next pass
    reports the same) and the ready pods within it."""
    p.set(stable=_sized(p, p.status.stable), canary=_sized(p, p.status.canary))


def _side(p: Pass, revision: str, want: int) -> Side:
    rs = p.observed.replica_sets.get(revision)
    have = rs.replicas if rs else 0
    return Side(have=have, ready=min(rs.ready_replicas, have) if rs else 0, want=want)


def _move(p: Pass, grow: Side, shrink: Side, *, strict: bool = False) -> tuple[int, int]:
    """next_sizes with the spec's bounds; `strict`: no ready pod may be missing (maxSurge
    then at least 1, or nothing could move)."""
    strategy = p.spec.strategy.canary
    replicas = p.spec.replicas
    surge, missing = move_bounds(strategy.max_surge, strategy.max_unavailable, replicas)
    if strict:
        surge, missing = max(surge, 1), 0
    return next_sizes(grow, shrink, replicas, surge, missing)


def _sized(p: Pass, revision: RevisionStatus | None) -> RevisionStatus | None:
    if revision is None:
        return None
    rs = p.observed.replica_sets.get(revision.revision)
    replicas = p.asked(revision.revision)
    ready = min(rs.ready_replicas if rs else 0, replicas)
    return revision.model_copy(update={"replicas": replicas, "ready_replicas": ready})
