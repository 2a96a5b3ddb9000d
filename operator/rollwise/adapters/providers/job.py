"""The job metric provider: a job gate's measurement is a Job the core plans and the Kubernetes
adapter creates; this module builds that Job and reads the gate's Jobs back (Complete passes,
Failed fails, with the failed pod's reason and log tail).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rollwise.adapters.manifests.builders import pod_template
from rollwise.adapters.manifests.readers import is_gate_job, job_of, job_state
from rollwise.adapters.manifests.types import (
    ROLE_GATE,
    Manifest,
    ServiceRef,
    owner_reference,
    workload_labels,
)
from rollwise.core import naming
from rollwise.core.model import (
    CreateGateJob,
    GateJobState,
)


def gate_job_manifest(ref: ServiceRef, version: str, action: CreateGateJob) -> Manifest:
    """One measurement Job of a job gate: owned by the ProgressiveService (deleted with it) and
    removed `ttlSecondsAfterFinished` after it finished; its pods are never serving pods."""
    labels = workload_labels(ref.name, action.revision, ROLE_GATE)
    template = pod_template(action.template.to_wire(), labels, version)
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
        state = job_state(job, [p for p in pods if job_of(p) == name], uid)
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
