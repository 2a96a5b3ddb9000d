"""The shapes shared by what rollwise writes and what it reads back: Manifest (a JSON dict in
the wire form), the references to the object a pass works on, its labels and owner references.
Names are deterministic (`core.naming`): a crash between two calls is repaired by finding the
objects again by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollwise.api import API_VERSION
from rollwise.api.service import KIND
from rollwise.api.train import KIND as TRAIN_KIND
from rollwise.core import naming

Manifest = dict[str, Any]

ROLE_WORKLOAD = naming.ROLE_WORKLOAD
ROLE_MIGRATION = naming.ROLE_MIGRATION
ROLE_GATE = naming.ROLE_GATE
COMPONENT = "rollwise"
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
EVENT_MESSAGE_LIMIT = 1024


@dataclass(frozen=True)
class ObjectRef:
    """The rollwise object a pass works on (a ProgressiveService, a ReleaseTrain): enough to
    own, label and report on objects, and to post its Events."""

    namespace: str
    name: str
    uid: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def child(self, kind: str, name: str) -> str:
        """How an object of this one is named in errors: "Job shop/payment-migrate-x"."""
        return f"{kind} {self.namespace}/{name}"


@dataclass(frozen=True)
class ServiceRef(ObjectRef):
    """A ProgressiveService."""

    kind: str = KIND


@dataclass(frozen=True)
class TrainRef(ObjectRef):
    """A ReleaseTrain (its Events and status)."""

    kind: str = TRAIN_KIND


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


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels
