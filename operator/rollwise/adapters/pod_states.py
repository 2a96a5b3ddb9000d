"""Why a revision's pods are not ready, in words: read from the pods' own status.

A canary that misses progressDeadlineSeconds is rolled back; the reason must say what its pods
were doing (crash-looping with an exit code, running but never passing the readiness probe,
unschedulable, stuck creating), so that the person reading `kubectl rollwise status` knows
where to look without listing pods. Pure functions over the pods' JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# At most this many pods are described; the count of the rest is given.
DESCRIBED_PODS = 2


def pod_not_ready_state(pod: Mapping[str, Any]) -> str:
    """One not-ready pod's state, e.g. "pod web-x: container app CrashLoopBackOff (last exit
    code 1, 4 restarts)" or "pod web-y: Running, container app not ready"."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    name = f"pod {metadata.get('name', '?')}"
    phase = status.get("phase") or "Pending"
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in containers:
        if container.get("ready"):
            continue
        cname = container.get("name", "?")
        state = container.get("state") or {}
        last = (container.get("lastState") or {}).get("terminated") or {}
        restarts = int(container.get("restartCount") or 0)
        if waiting := state.get("waiting"):
            text = f"{name}: container {cname} {waiting.get('reason') or 'Waiting'}"
            details = []
            if last:
                details.append(f"last exit code {last.get('exitCode')}")
            if restarts:
                details.append(f"{restarts} restarts")
            if details:
                text += f" ({', '.join(details)})"
            return text
        if terminated := state.get("terminated"):
            return (
                f"{name}: container {cname} terminated: {terminated.get('reason') or 'Error'} "
                f"(exit code {terminated.get('exitCode')})"
            )
        if state.get("running") is not None:
            text = f"{name}: {phase}, container {cname} not ready"
            return text + (f" ({restarts} restarts)" if restarts else "")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = condition.get("reason") or "not scheduled"
            return f"{name}: {phase}, {reason}: {str(condition.get('message') or '')[:200]}"
    return f"{name}: {phase}"


def not_ready_summary(pods: Iterable[Mapping[str, Any]]) -> str:
    """The states of the given not-ready pods ("" for none), oldest first, at most
    DESCRIBED_PODS of them described."""
    listed = sorted(
        pods,
        key=lambda p: (
            str((p.get("metadata") or {}).get("creationTimestamp") or ""),
            str((p.get("metadata") or {}).get("name") or ""),
        ),
    )
    text = "; ".join(pod_not_ready_state(p) for p in listed[:DESCRIBED_PODS])
    if len(listed) > DESCRIBED_PODS:
        text += f"; and {len(listed) - DESCRIBED_PODS} more not ready"
    return text
