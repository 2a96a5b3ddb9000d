"""What rollwise writes to the cluster, as plain JSON dicts: ReplicaSets, Services, migration
Jobs, Events, and the merge patch between two versions of an object. Pure functions, tested
without a cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rollwise.adapters.manifests.types import (
    COMPONENT,
    EVENT_MESSAGE_LIMIT,
    ROLE_MIGRATION,
    ROLE_WORKLOAD,
    Manifest,
    ObjectRef,
    ServiceRef,
    owner_reference,
    pod_selector,
    service_labels,
    workload_labels,
)
from rollwise.api import API_VERSION
from rollwise.api.service import ServiceSpec
from rollwise.core import naming
from rollwise.core.model import (
    EnsureServices,
    EventRecord,
)


def pod_template(template: Manifest, labels: dict[str, str], version: str) -> Manifest:
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
            "template": pod_template(spec.pod_template().to_wire(), labels, version),
        },
    }


def service_ports(spec: ServiceSpec) -> list[Manifest]:
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
            "spec": {"type": "ClusterIP", "selector": selector, "ports": service_ports(spec)},
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
    template = pod_template(migration.template.to_wire(), labels, version)
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


def event_manifest(
    ref: ObjectRef,
    record: EventRecord,
    *,
    name: str,
    at: datetime,
    instance: str,
    component: str = COMPONENT,
) -> Manifest:
    """A core/v1 Event on a rollwise object, as `kubectl describe` shows it."""
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
        "source": {"component": component},
        "reportingComponent": component,
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


def service_patch(current: Manifest, wanted: Manifest) -> Manifest:
    """A merge patch bringing selector, ports and labels of a Service to what rollwise wants;
    fields the API server defaults (clusterIP, ...) are left alone."""
    spec = current.get("spec") or {}
    patch: Manifest = {}
    selector = merge_patch(spec.get("selector") or {}, wanted["spec"]["selector"])
    ports_now = [
        {k: p.get(k) for k in ("name", "port", "targetPort", "protocol")}
        for p in spec.get("ports") or []
    ]
    spec_patch: Manifest = {}
    if selector:
        spec_patch["selector"] = selector
    if ports_now != wanted["spec"]["ports"]:
        spec_patch["ports"] = wanted["spec"]["ports"]
    if spec_patch:
        patch["spec"] = spec_patch
    labels = (current.get("metadata") or {}).get("labels") or {}
    missing = {k: v for k, v in wanted["metadata"]["labels"].items() if labels.get(k) != v}
    if missing:
        patch["metadata"] = {"labels": missing}
    return patch
