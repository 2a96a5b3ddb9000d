"""Replica arithmetic: pods for a weight, and bounded moves of pods between two revisions
(maxSurge/maxUnavailable). Pure numbers: no pass and no status."""

from __future__ import annotations

import math
from dataclasses import dataclass


def canary_replicas_for(weight: int, replicas: int) -> int:
    """Canary pods for a weight under the replicas router: ceil(weight% of replicas), at least one
    pod for any weight above 0. The real share is canary ready / all ready pods, so with 4 replicas
    a 10% step runs 1 canary pod (25%): the weight is approximated upwards, never to 0."""
    if weight <= 0 or replicas <= 0:
        return 0
    return min(replicas, max(1, math.ceil(weight * replicas / 100)))


def replica_split(weight: int, replicas: int, surge: int) -> tuple[int, int]:
    """(canary, stable) pods for a weight under the replicas router, where the pod ratio is the
    traffic split.

    For 0 < weight < 100 both sides keep at least one pod: a step under analysis never takes
    all the traffic, and stable never empties. Within that, the canary count is the closest to
    weight% of replicas (a tie rounds up). At 1 replica the two pods need a surge pod (1/1);
    when maxSurge resolves to 0 there is no room for it, and the closer of 0/1 and 1/0 is
    taken (below 50 no canary pod runs, from 50 on the canary takes all the traffic), so
    1 replica with maxSurge 0 is a spec that cannot canary and the docs say to allow a surge.
    """
    if replicas <= 0:
        return 0, 0
    if weight <= 0:
        return 0, replicas
    if weight >= 100:
        return replicas, 0
    if replicas == 1:
        if surge >= 1:
            return 1, 1
        return (1, 0) if weight >= 50 else (0, 1)
    # Closest count: floor(x + 1/2) in integers, x = weight * replicas / 100.
    closest = (2 * weight * replicas + 100) // 200
    canary = min(replicas - 1, max(1, closest))
    return canary, replicas - canary


def stable_replicas_for(canary: int, replicas: int, *, replicas_router: bool) -> int:
    """Stable pods beside `canary` canary pods: the rest under the replicas router (the pod
    ratio is the weight), all of them under a traffic router (it splits requests, not pods)."""
    return replicas - canary if replicas_router else replicas


def resolve_bound(value: int | str, replicas: int, *, round_up: bool) -> int:
    """A maxSurge/maxUnavailable value as a pod count: a count as it is, a percentage of
    replicas rounded up (maxSurge) or down (maxUnavailable), as Deployments do."""
    if isinstance(value, int):
        return value
    share = int(value.rstrip("%")) * replicas
    return -(-share // 100) if round_up else share // 100


def move_bounds(surge: int | str, unavailable: int | str, replicas: int) -> tuple[int, int]:
    """(extra pods allowed, ready pods that may be missing) for `replicas`. When both round
    to 0 one pod may be missing, as a Deployment does, or no pod could ever move."""
    extra = resolve_bound(surge, replicas, round_up=True)
    missing = resolve_bound(unavailable, replicas, round_up=False)
    if extra == 0 and missing == 0:
        missing = 1
    return extra, missing


@dataclass(frozen=True)
class Side:
    """One revision's ReplicaSet in a move: its size now, its ready pods, its target size."""

    have: int
    ready: int
    want: int


def next_sizes(
    grow: Side, shrink: Side, replicas: int, surge: int, unavailable: int
) -> tuple[int, int]:
    """The next sizes of a move of pods from `shrink` to `grow` that keeps at most
    replicas+surge pods asked for and at least replicas-unavailable of them ready.

    The shrinking side goes first: its pods that are not ready serve nothing and go at once,
    ready ones only as far as the other ready pods cover replicas-unavailable. The growing
    side then takes the room left under replicas+surge. A side that is not moving the way its
    role says (both grow or both shrink after a scale) goes straight to its target.
    """
    if shrink.want >= shrink.have:
        shrink_to = shrink.want
    else:
        unready = shrink.have - shrink.ready
        spare = max(0, grow.ready + shrink.ready - (replicas - unavailable))
        shrink_to = max(shrink.want, shrink.have - unready - spare)
    if grow.want <= grow.have:
        grow_to = grow.want
    else:
        room = max(0, replicas + surge - shrink_to - grow.have)
        grow_to = min(grow.want, grow.have + room)
    return grow_to, shrink_to
