"""How rollwise reads the world back: plain summaries (ReplicaSetState, JobState, the Services'
revisions) from the JSON dicts the API server returns. Pure functions, tested without a
cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rollwise.adapters.manifests.builders import service_ports
from rollwise.adapters.manifests.types import (
    JOB_NAME_LABELS,
    ROLE_GATE,
    ROLE_WORKLOAD,
    ServiceRef,
    is_owned_by,
    labels_of,
    pod_selector,
)
from rollwise.api.service import ServiceSpec
from rollwise.core import naming
from rollwise.core.model import (
    EnsureServices,
    JobState,
    ReplicaSetState,
)

# Waiting reasons of a container that will not get better by waiting.
_STUCK_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def parse_time(value: Any) -> datetime | None:
    """A metav1.Time from the wire, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def pod_failed(pod: Mapping[str, Any]) -> bool:
    """Failed, or a container stuck in a state that waiting will not fix (crash loop, image)."""
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return True
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _STUCK_WAITING:
            return True
    return False


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's Ready condition is True."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def replica_set_states(
    replica_sets: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]], uid: str
) -> dict[str, ReplicaSetState]:
    """The service's own ReplicaSets by revision; objects not owned by `uid` are ignored.

    Ready replicas are the larger of the ReplicaSet's status and its pods counted Ready, when
    pods are given: the controller-manager writes a ReplicaSet's status after its pods change,
    and under load that came 30 s late (N=1000 benchmark), while the pod itself says Ready at
    once. A pod going unready is seen no later than before, through the status."""
    failed: dict[str, int] = {}
    ready: dict[str, int] = {}
    for pod in pods:
        labels = labels_of(pod)
        if labels.get(naming.LABEL_ROLE) != ROLE_WORKLOAD or _terminating(pod):
            continue
        pod_revision = labels.get(naming.LABEL_REVISION, "")
        if pod_failed(pod):
            failed[pod_revision] = failed.get(pod_revision, 0) + 1
        elif pod_ready(pod):
            ready[pod_revision] = ready.get(pod_revision, 0) + 1
    states: dict[str, ReplicaSetState] = {}
    for rs in replica_sets:
        revision = labels_of(rs).get(naming.LABEL_REVISION)
        if not revision or not is_owned_by(rs, uid):
            continue
        spec = rs.get("spec") or {}
        status = rs.get("status") or {}
        states[revision] = ReplicaSetState(
            revision=revision,
            replicas=int(spec.get("replicas", 1)),
            ready_replicas=max(int(status.get("readyReplicas") or 0), ready.get(revision, 0)),
            available_replicas=int(status.get("availableReplicas") or 0),
            pods_failed=failed.get(revision, 0),
        )
    return states


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition  # type: ignore[no-any-return]
    return None


def job_of(pod: Mapping[str, Any]) -> str | None:
    labels = labels_of(pod)
    return next((labels[k] for k in JOB_NAME_LABELS if k in labels), None)


def pod_failure_reason(pod: Mapping[str, Any]) -> str | None:
    """Why a pod failed, from its terminated container: reason, exit code and message."""
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name", "?")
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in containers:
        state = container.get("state") or {}
        term = state.get("terminated") or (container.get("lastState") or {}).get("terminated")
        if term and term.get("exitCode", 0) != 0:
            text = (
                f"pod {name}: container {container.get('name')} terminated: "
                f"{term.get('reason') or 'Error'} (exit code {term.get('exitCode')})"
            )
            if term.get("message"):
                text += f": {str(term['message']).strip()[:300]}"
            return text
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in _STUCK_WAITING:
            text = f"pod {name}: container {container.get('name')} {waiting['reason']}"
            if waiting.get("message"):
                text += f": {str(waiting['message']).strip()[:300]}"
            return text
    if status.get("phase") == "Failed":
        return f"pod {name}: {status.get('reason') or 'Failed'} {status.get('message') or ''}"
    return None


def job_state(job: Mapping[str, Any], pods: list[Mapping[str, Any]], uid: str) -> JobState:
    metadata = job.get("metadata") or {}
    status = job.get("status") or {}
    failed = _condition(job, "Failed")
    complete = _condition(job, "Complete")
    reason: str | None = None
    if failed is not None:
        parts = [f"{failed.get('reason') or 'Failed'}: {failed.get('message') or ''}".strip()]
        failed_pods = sorted(
            (p for p in pods if (p.get("status") or {}).get("phase") == "Failed"),
            key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "",
        )
        for pod in reversed(failed_pods):
            why = pod_failure_reason(pod)
            if why:
                parts.append(why)
                break
        reason = "; ".join(part for part in parts if part)
    finished = parse_time(status.get("completionTime"))
    if finished is None and failed is not None:
        finished = parse_time(failed.get("lastTransitionTime"))
    return JobState(
        name=str(metadata.get("name")),
        revision=labels_of(job).get(naming.LABEL_REVISION, ""),
        owned=is_owned_by(job, uid),
        succeeded=complete is not None,
        failed=failed is not None,
        failure_reason=reason,
        started_at=parse_time(status.get("startTime")),
        finished_at=finished,
        failed_pods=int(status.get("failed") or 0),
    )


def is_gate_job(job: Mapping[str, Any]) -> bool:
    """A job gate's measurement Job (not a migration)."""
    return labels_of(job).get(naming.LABEL_ROLE) == ROLE_GATE


def failed_pod(job_name: str, pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest failed pod of a Job, whose termination and log tell why it failed."""
    failed = [
        p
        for p in pods
        if job_of(p) == job_name and (p.get("status") or {}).get("phase") == "Failed"
    ]
    return max(failed, key=_created) if failed else None


LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 1024


def log_tail(text: str, lines: int = LOG_TAIL_LINES, limit: int = LOG_TAIL_BYTES) -> str:
    """The last `lines` lines of a log, at most `limit` bytes (cut at a line, or at a UTF-8
    character when one line alone is longer), trailing blank lines dropped, joined by " | "
    so that it reads on one line of an Event or a status message."""
    kept = [line.rstrip("\r") for line in text.rstrip().splitlines()][-lines:]
    out: list[str] = []
    size = 0
    for line in reversed(kept):
        cost = len(line.encode()) + (3 if out else 0)
        if size + cost > limit:
            if not out:  # one line alone is too long: its end, cut at a character
                tail = line.encode()[-limit:].decode(errors="ignore")
                out.append(tail)
            break
        out.append(line)
        size += cost
    return " | ".join(reversed(out))


def job_states(
    jobs: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    uid: str,
    prefer: str | None = None,
) -> dict[str, JobState]:
    """One migration Job per revision: the one named `prefer` (the attempt recorded in status)
    when it exists, else the newest attempt."""
    by_job: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        job_name = job_of(pod)
        if job_name:
            by_job.setdefault(job_name, []).append(pod)
    chosen: dict[str, Mapping[str, Any]] = {}
    for job in jobs:
        revision = labels_of(job).get(naming.LABEL_REVISION)
        if not revision or is_gate_job(job):
            continue
        name = (job.get("metadata") or {}).get("name")
        current = chosen.get(revision)
        if current is None or name == prefer:
            chosen[revision] = job
            continue
        if (current.get("metadata") or {}).get("name") == prefer:
            continue
        if _created(job) >= _created(current):
            chosen[revision] = job
    return {
        revision: job_state(job, by_job.get(str((job.get("metadata") or {}).get("name")), []), uid)
        for revision, job in chosen.items()
    }


def _created(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("creationTimestamp") or ""), str(metadata.get("name") or ""))


def _port_key(port: Mapping[str, Any]) -> tuple[Any, ...]:
    return (port.get("name"), port.get("port"), port.get("targetPort"), port.get("protocol", "TCP"))


def observed_services(
    ref: ServiceRef, spec: ServiceSpec, services: Iterable[Mapping[str, Any]]
) -> EnsureServices | None:
    """The three Services read back in the terms of EnsureServices; None when any is missing,
    not ours, or differs from what rollwise would write (ports, base selector), so that the
    core plans an EnsureServices that repairs it."""
    by_name = {(s.get("metadata") or {}).get("name"): s for s in services}
    main_name, stable_name, canary_name = naming.service_names(ref.name)
    wanted_ports = sorted(_port_key(p) for p in service_ports(spec))
    base = pod_selector(ref.name)
    revisions: dict[str, str | None] = {}
    for name in (main_name, stable_name, canary_name):
        svc = by_name.get(name)
        if svc is None or not is_owned_by(svc, ref.uid):
            return None
        svc_spec = svc.get("spec") or {}
        selector = dict(svc_spec.get("selector") or {})
        revision = selector.pop(naming.LABEL_REVISION, None)
        if selector != base:
            return None
        if sorted(_port_key(p) for p in svc_spec.get("ports") or []) != wanted_ports:
            return None
        revisions[name] = revision
    stable = revisions[stable_name]
    canary = revisions[canary_name]
    if stable is None or canary is None:
        return None
    main = revisions[main_name]
    return EnsureServices(
        stable_revision=stable,
        canary_revision=None if canary == stable else canary,
        main_revisions=(main,) if main else (),
    )
