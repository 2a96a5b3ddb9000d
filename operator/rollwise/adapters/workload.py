"""A workloadRef's Deployment: read as a pod template plus a summary for the core, and the
three writes of its handover. Only the Deployment's labels and its scale subresource are ever
written, never its spec, so the user's manifest stays what the cluster holds."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rollwise.adapters.kubeapi import DEPLOYMENTS, PROGRESSIVE_SERVICES, KubeApi
from rollwise.adapters.manifests.types import Manifest, ServiceRef
from rollwise.api.service import PodTemplate
from rollwise.core import naming
from rollwise.core.model import WorkloadState

_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def read_workload(
    api: KubeApi, namespace: str, name: str, service: str, finalizers: list[str]
) -> tuple[PodTemplate, WorkloadState] | None:
    """The Deployment's pod template and summary; None when it does not exist."""
    deployment = api.get(DEPLOYMENTS, namespace, name)
    if deployment is None:
        return None
    metadata = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    labels = metadata.get("labels") or {}
    state = WorkloadState(
        name=name,
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int((deployment.get("status") or {}).get("readyReplicas") or 0),
        adopted=labels.get(naming.LABEL_ADOPTED_BY) == service
        and naming.FINALIZER_RELEASE in finalizers,
        manifest_sets_replicas=manifest_sets_replicas(deployment),
    )
    return PodTemplate.model_validate(spec.get("template") or {}), state


def manifest_sets_replicas(deployment: Mapping[str, Any]) -> bool:
    """Whether someone's applied manifest (kubectl client-side or server-side apply, or a
    GitOps tool's) sets spec.replicas: then holding it at 0 shows as drift there."""
    metadata = deployment.get("metadata") or {}
    applied = (metadata.get("annotations") or {}).get(_LAST_APPLIED)
    if applied:
        try:
            if "replicas" in (json.loads(applied).get("spec") or {}):
                return True
        except (ValueError, AttributeError):
            pass
    for entry in metadata.get("managedFields") or []:
        fields = ((entry.get("fieldsV1") or {}).get("f:spec")) or {}
        if entry.get("operation") == "Apply" and "f:replicas" in fields:
            return True
    return False


class WorkloadHandover:
    """The writes of AdoptWorkload, ScaleWorkload and ReleaseWorkload."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def adopt(self, ref: ServiceRef, name: str) -> None:
        """Label the Deployment (its watch then wakes this service) and add our finalizer."""
        self.api.patch(
            DEPLOYMENTS,
            ref.namespace,
            name,
            {"metadata": {"labels": {naming.LABEL_ADOPTED_BY: ref.name}}},
        )
        self._finalizer(ref, present=True)

    def scale(self, ref: ServiceRef, name: str, replicas: int) -> None:
        """Through the scale subresource, as an HPA would: the spec is the user's."""
        self.api.patch(
            DEPLOYMENTS, ref.namespace, name, {"spec": {"replicas": replicas}}, sub="scale"
        )

    def release(self, ref: ServiceRef, name: str) -> None:
        """Remove our label (a Deployment already gone is fine), then our finalizer."""
        if name and self.api.get(DEPLOYMENTS, ref.namespace, name) is not None:
            self.api.patch(
                DEPLOYMENTS,
                ref.namespace,
                name,
                {"metadata": {"labels": {naming.LABEL_ADOPTED_BY: None}}},
            )
        self._finalizer(ref, present=False)

    def _finalizer(self, ref: ServiceRef, *, present: bool) -> None:
        # The list is replaced whole, guarded by resourceVersion: a concurrent change to it is a
        # 409 and the next pass tries again, so no other finalizer is ever lost.
        current = self.api.get(PROGRESSIVE_SERVICES, ref.namespace, ref.name)
        if current is None:
            return
        metadata: Manifest = current.get("metadata") or {}
        if metadata.get("uid") != ref.uid:
            return
        finalizers = list(metadata.get("finalizers") or [])
        if (naming.FINALIZER_RELEASE in finalizers) == present:
            return
        if present:
            finalizers.append(naming.FINALIZER_RELEASE)
        else:
            finalizers.remove(naming.FINALIZER_RELEASE)
        body = {
            "metadata": {"finalizers": finalizers, "resourceVersion": metadata["resourceVersion"]}
        }
        self.api.patch(PROGRESSIVE_SERVICES, ref.namespace, ref.name, body)
