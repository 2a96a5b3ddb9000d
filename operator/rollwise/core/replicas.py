"""Replica arithmetic for weights: pure numbers, no pass and no status."""

from __future__ import annotations

import math


def canary_replicas_for(weight: int, replicas: int) -> int:
    """Canary pods for a weight under the replicas router: ceil(weight% of replicas), at least one
    pod for any weight above 0. The real share is canary ready / all ready pods, so with 4 replicas
    a 10% step runs 1 canary pod (25%): the weight is approximated upwards, never to 0."""
    if weight <= 0 or replicas <= 0:
        return 0
    return min(replicas, max(1, math.ceil(weight * replicas / 100)))


def stable_replicas_for(canary: int, replicas: int, *, replicas_router: bool) -> int:
    """Stable pods beside `canary` canary pods: the rest under the replicas router (the pod
    ratio is the weight), all of them under a traffic router (it splits requests, not pods)."""
    return replicas - canary if replicas_router else replicas
