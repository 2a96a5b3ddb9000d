"""ReleaseTrains in the cluster: read a train and its members into plain data, write its status,
forward requests to members. Thin: every decision is the core's (`core/train.py`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rollwise.adapters.kubeapi import PROGRESSIVE_SERVICES, RELEASE_TRAINS, KubeApi
from rollwise.adapters.manifests.types import Manifest, TrainRef
from rollwise.adapters.status_writer import StatusWriter
from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import Phase
from rollwise.api.stored_status import read_stored_model, read_stored_status
from rollwise.api.train import MemberSpec, MemberStatus, Release, TrainStatus
from rollwise.core import naming
from rollwise.core.release import release_revision
from rollwise.core.train.model import MemberObserved, MemberRequest, release_of

log = logging.getLogger("rollwise.trains")


def read_train_status(raw: object) -> TrainStatus:
    """A stored train status, read field by field (unreadable fields are dropped and
    rewritten by the next pass)."""
    reading = read_stored_model(raw, TrainStatus)
    if reading.problems:
        log.warning("train status not fully readable: %s", "; ".join(reading.problems))
    status = reading.status
    assert isinstance(status, TrainStatus)
    return status


def release_for(train: Mapping[str, Any] | None, service: str) -> Release | None:
    """What a train's status says a member runs now (None: its own spec, or no such train)."""
    if train is None:
        return None
    entry = read_train_status(train.get("status")).member(service)
    return entry.release if entry is not None else None


def observe_member(
    body: Manifest | None, train: str, member_spec: MemberSpec, entry: MemberStatus | None
) -> MemberObserved:
    """One member ProgressiveService, summarised for the train's decision."""
    if body is None:
        return MemberObserved(exists=False, joined=False)
    status = read_stored_status(body.get("status")).status
    abort = status.abort
    failed = (
        abort.revision
        if abort and status.phase in (Phase.ROLLED_BACK, Phase.MIGRATION_FAILED)
        else None
    )
    common: dict[str, Any] = {
        "phase": status.phase,
        "stable_revision": status.stable.revision if status.stable else None,
        "stable_version": status.stable.version if status.stable else None,
        "failed_revision": failed,
        "message": status.message,
    }
    try:
        spec = ServiceSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return MemberObserved(joined=False, problem="its spec does not validate", **common)
    joined = spec.release_train == train
    if spec.template is None:
        return MemberObserved(
            joined=joined, problem="members with a workloadRef are not supported yet", **common
        )
    try:
        target = release_revision(spec, release_of(member_spec))
        restore = release_revision(spec, entry.previous if entry is not None else None)
    except ValueError as err:
        return MemberObserved(joined=joined, problem=str(err), **common)
    return MemberObserved(joined=joined, target_revision=target, restore_revision=restore, **common)


class TrainAdapter:
    """Reads and writes of one ReleaseTrain pass, through the (fenced) KubeApi."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def read_train(self, namespace: str, name: str) -> Manifest | None:
        return self.api.get(RELEASE_TRAINS, namespace, name)

    def request_member(self, namespace: str, request: MemberRequest) -> None:
        """Write the request annotation on a member, as `kubectl rollwise` would."""
        text = json.dumps(
            {"action": request.action.value, "id": request.id, "by": request.by},
            separators=(",", ":"),
        )
        body = {"metadata": {"annotations": {naming.ANNOTATION_REQUEST: text}}}
        self.api.patch(PROGRESSIVE_SERVICES, namespace, request.service, body)

    def patch_status(
        self,
        namespace: str,
        name: str,
        uid: str,
        resource_version: str,
        old_status: Manifest,
        new_status: TrainStatus,
        *,
        attempts: int = 3,
    ) -> bool:
        """Merge-patch the train's status if it differs from what is stored (the one
        StatusWriter: conflicts re-read and retried). True when a patch was written."""
        return StatusWriter(self.api, RELEASE_TRAINS).write(
            TrainRef(namespace, name, uid),
            resource_version,
            old_status,
            new_status,
            attempts=attempts,
        )
