"""The shapes of what rollwise writes to the cluster and how it reads the world back.

Pure functions over plain JSON dicts (the wire form the API server speaks), so that every
manifest and every summary can be tested without a cluster. Names are deterministic
(`core.naming`): a crash between two calls is repaired by finding the objects again by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollwise.api import API_VERSION
from rollwise.api.service import KIND, ServiceSpec
from rollwise.core import naming
from rollwise.core.model import (
    CreateGateJob,
    EnsureServices,
    EventRecord,
    GateJobState,
    JobState,
    ReplicaSetState,
)

Manifest = dict[str, Any]

ROLE_WORKLOAD = naming.ROLE_WORKLOAD
ROLE_MIGRATION = naming.ROLE_MIGRATION
ROLE_GATE = naming.ROLE_GATE
COMPONENT = "rollwise"
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
EVENT_MESSAGE_LIMIT = 1024
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


@dataclass(frozen=True)
class ServiceRef:
    """The ProgressiveService a pass works on: enough to own, label and report on objects."""

    namespace: str
    name: str
    uid: str
    kind: str = KIND  # ReleaseTrain for a train's Events

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def child(self, kind: str, name: str) -> str:
        """How an object of this service is named in errors: "Job shop/payment-migrate-x"."""
        return f"{kind} {self.namespace}/{name}"


# ----------------------------------------------------------------------------- labels, owners


def owner_reference(ref: ServiceRef) -> Manifest:
    """Controller ownerReference to the ProgressiveService: deletion cascades through the garbage
    collector, so no finalizer is needed and deletion never waits for the operator."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": ref.name,
        "uid": ref.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """True when an ownerReference of `obj` names this uid."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, dict) and r.get("uid") == uid for r in refs)


def service_labels(name: str) -> dict[str, str]:
    """Labels on everything of one service; `managed-by` is the server-side watch filter."""
    return {
        naming.LABEL_NAME: name,
        naming.LABEL_OWNER: name,
        naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
    }


def workload_labels(name: str, revision: str, role: str) -> dict[str, str]:
    return {**service_labels(name), naming.LABEL_REVISION: revision, naming.LABEL_ROLE: role}


def owned_selector(name: str) -> str:
    """The label selector of every object rollwise made for this service."""
    return f"{naming.LABEL_OWNER}={name},{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"


def pod_selector(name: str, revision: str | None = None) -> dict[str, str]:
    """Serving pods of the service (of one revision): migration pods carry the same name and
    revision labels, so the role label keeps them out of Services and ReplicaSets."""
    selector = {naming.LABEL_NAME: name, naming.LABEL_ROLE: ROLE_WORKLOAD}
    if revision is not None:
        selector[naming.LABEL_REVISION] = revision
    return selector


def _pod_template(template: Manifest, labels: dict[str, str], version: str) -> Manifest:
    metadata = template.get("metadata") or {}
    return {
        "metadata": {
            "labels": {**(metadata.get("labels") or {}), **labels},
            "annotations": {
                **(metadata.get("annotations") or {}),
                naming.ANNOTATION_VERSION: version,
            },
        },
        "spec": dict(template["spec"]),
    }


# ----------------------------------------------------------------------------- builders


def replica_set_manifest(
    ref: ServiceRef, spec: ServiceSpec, revision: str, replicas: int
) -> Manifest:
    """The ReplicaSet of one revision, from spec.template; `<name>-<revision>`."""
    version = spec.resolved_version()
    labels = workload_labels(ref.name, revision, ROLE_WORKLOAD)
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": naming.replica_set_name(ref.name, revision),
            "namespace": ref.namespace,
            "labels": labels,
            "annotations": {naming.ANNOTATION_VERSION: version},
            "ownerReferences": [owner_reference(ref)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pod_selector(ref.name, revision)},
            "template": _pod_template(spec.pod_template().to_wire(), labels, version),
        },
    }


def _service_ports(spec: ServiceSpec) -> list[Manifest]:
    return [
        {
            "name": "http",
            "port": spec.service.port,
            "targetPort": spec.service.target_port,
            "protocol": "TCP",
        }
    ]


def service_manifests(ref: ServiceRef, spec: ServiceSpec, want: EnsureServices) -> list[Manifest]:
    """`<name>`, `<name>-stable`, `<name>-canary`, in that order.

    `<name>` selects every serving pod, or only one revision when main_revisions names exactly
    one (how the replicas router drains the canary at once); `-canary` selects the stable
    revision while there is no canary, so that it always has endpoints for a router.
    """
    main_name, stable_name, canary_name = naming.service_names(ref.name)
    main_revision = want.main_revisions[0] if len(want.main_revisions) == 1 else None
    selectors = {
        main_name: pod_selector(ref.name, main_revision),
        stable_name: pod_selector(ref.name, want.stable_revision),
        canary_name: pod_selector(ref.name, want.canary_revision or want.stable_revision),
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": ref.namespace,
                "labels": service_labels(ref.name),
                "ownerReferences": [owner_reference(ref)],
            },
            "spec": {"type": "ClusterIP", "selector": selector, "ports": _service_ports(spec)},
        }
        for name, selector in selectors.items()
    ]


def migration_job_manifest(
    ref: ServiceRef, spec: ServiceSpec, revision: str, job_name: str
) -> Manifest:
    """The migration Job of one revision and attempt, from spec.migration."""
    migration = spec.migration
    if migration is None:
        raise ValueError(f"{ref}: spec.migration is not set")
    version = spec.resolved_version()
    labels = workload_labels(ref.name, revision, ROLE_MIGRATION)
    template = _pod_template(migration.template.to_wire(), labels, version)
    template["spec"].setdefault("restartPolicy", "Never")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": ref.namespace,
            "labels": labels,
            "annotations": {naming.ANNOTATION_VERSION: version},
            "ownerReferences": [owner_reference(ref)],
        },
        "spec": {
            "backoffLimit": migration.backoff_limit,
            "activeDeadlineSeconds": migration.active_deadline_seconds,
            "template": template,
        },
    }


def gate_job_manifest(ref: ServiceRef, version: str, action: CreateGateJob) -> Manifest:
    """One measurement Job of a job gate: owned by the ProgressiveService (deleted with it) and
    removed `ttlSecondsAfterFinished` after it finished; its pods are never serving pods."""
    labels = workload_labels(ref.name, action.revision, ROLE_GATE)
    template = _pod_template(action.template.to_wire(), labels, version)
    template["spec"].setdefault("restartPolicy", "Never")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": action.job_name,
            "namespace": ref.namespace,
            "labels": labels,
            "annotations": {
                naming.ANNOTATION_VERSION: version,
                naming.ANNOTATION_GATE: action.gate,
            },
            "ownerReferences": [owner_reference(ref)],
        },
        "spec": {
            "backoffLimit": action.backoff_limit,
            "activeDeadlineSeconds": action.active_deadline_seconds,
            "ttlSecondsAfterFinished": action.ttl_seconds_after_finished,
            "template": template,
        },
    }


def event_manifest(
    ref: ServiceRef,
    record: EventRecord,
    *,
    name: str,
    at: datetime,
    instance: str,
) -> Manifest:
    """A core/v1 Event on the ProgressiveService, as `kubectl describe` shows it."""
    stamp = rfc3339(at)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": ref.kind,
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": ref.uid,
        },
        "reason": record.reason,
        "message": record.message[:EVENT_MESSAGE_LIMIT],
        "type": "Warning" if record.warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


# ----------------------------------------------------------------------------- readers


def rfc3339(at: datetime) -> str:
    """A metav1.Time: seconds precision, UTC, `Z` (a naive datetime is taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """A metav1.Time from the wire, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


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
        labels = _labels(pod)
        if labels.get(naming.LABEL_ROLE) != ROLE_WORKLOAD or _terminating(pod):
            continue
        pod_revision = labels.get(naming.LABEL_REVISION, "")
        if pod_failed(pod):
            failed[pod_revision] = failed.get(pod_revision, 0) + 1
        elif pod_ready(pod):
            ready[pod_revision] = ready.get(pod_revision, 0) + 1
    states: dict[str, ReplicaSetState] = {}
    for rs in replica_sets:
        revision = _labels(rs).get(naming.LABEL_REVISION)
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


def _job_of(pod: Mapping[str, Any]) -> str | None:
    labels = _labels(pod)
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


def _job_state(job: Mapping[str, Any], pods: list[Mapping[str, Any]], uid: str) -> JobState:
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
        revision=_labels(job).get(naming.LABEL_REVISION, ""),
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
    return _labels(job).get(naming.LABEL_ROLE) == ROLE_GATE


def failed_pod(job_name: str, pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest failed pod of a Job, whose termination and log tell why it failed."""
    failed = [
        p
        for p in pods
        if _job_of(p) == job_name and (p.get("status") or {}).get("phase") == "Failed"
    ]
    return max(failed, key=_created) if failed else None


def gate_job_states(
    jobs: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    uid: str,
    log_tails: Mapping[str, str] | None = None,
) -> dict[str, GateJobState]:
    """The service's measurement Jobs by name; `log_tails` by Job name, when read."""
    pods = list(pods)
    states: dict[str, GateJobState] = {}
    for job in jobs:
        if not is_gate_job(job):
            continue
        name = str((job.get("metadata") or {}).get("name"))
        state = _job_state(job, [p for p in pods if _job_of(p) == name], uid)
        states[name] = GateJobState(
            name=name,
            owned=state.owned,
            succeeded=state.succeeded,
            failed=state.failed,
            failure_reason=state.failure_reason,
            log_tail=(log_tails or {}).get(name),
            finished_at=state.finished_at,
        )
    return states


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
        job_name = _job_of(pod)
        if job_name:
            by_job.setdefault(job_name, []).append(pod)
    chosen: dict[str, Mapping[str, Any]] = {}
    for job in jobs:
        revision = _labels(job).get(naming.LABEL_REVISION)
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
        revision: _job_state(job, by_job.get(str((job.get("metadata") or {}).get("name")), []), uid)
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
    wanted_ports = sorted(_port_key(p) for p in _service_ports(spec))
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


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 JSON merge patch that turns `old` into `new` ({} when they are equal):
    keys gone from `new` become null, so a merge patch of a whole status also removes fields."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            if isinstance(old[key], dict) and isinstance(value, dict):
                patch[key] = merge_patch(old[key], value)
            else:
                patch[key] = value
    return patch
