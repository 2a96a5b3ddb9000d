"""The one status writer of every kind: a merge patch of the status subresource, written only
when it changes something, guarded by the resourceVersion read at the start of the pass.

A concurrent write is a 409 (a stale resourceVersion), never a silent merge; 409 and 422 (a
patch computed against a status that changed since) read the object again and recompute the
patch, a few times. Any other refusal (403, a 422 that persists, the leader fence's) is raised
as an AdapterError naming the object, for the pass to log and back off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import KubeApi, Resource
from rollwise.adapters.manifests.builders import merge_patch
from rollwise.adapters.manifests.types import Manifest, ObjectRef
from rollwise.api.base import ApiModel

log = logging.getLogger("rollwise.adapters.status")

# Conflicts worth a re-read: a stale resourceVersion (409) or a patch against a status that
# moved under it (422).
RETRIED = (409, 422)
# (namespace, name, resourceVersion written): the watch cache learns the pass's own write.
Written = Callable[[str, str, str], None]


class StatusWriter:
    """`write(ref, resource_version, stored, new)` for one resource (a kind's objects)."""

    def __init__(self, api: KubeApi, resource: Resource, *, written: Written | None = None) -> None:
        self.api = api
        self.resource = resource
        self.written = written

    def write(
        self,
        ref: ObjectRef,
        resource_version: str,
        stored: Manifest,
        new: ApiModel,
        *,
        attempts: int = 3,
    ) -> bool:
        """Patch the status to `new` if it differs from `stored`; True when a patch was
        written. On a conflict the object is read again (gone or replaced: nothing written)."""
        wanted = new.to_wire()
        for attempt in range(1, attempts + 1):
            patch = merge_patch(stored, wanted)
            if not patch:
                return False
            body = {"metadata": {"resourceVersion": resource_version}, "status": patch}
            try:
                result = self.api.patch(self.resource, ref.namespace, ref.name, body, sub="status")
            except AdapterError as err:
                if err.status not in RETRIED or attempt == attempts:
                    raise
                log.info(
                    "status patch conflicted (%s); re-reading",
                    err.status,
                    extra={"k8s_ref": {"namespace": ref.namespace, "name": ref.name}},
                )
            else:
                if self.written is not None:
                    version = (result.get("metadata") or {}).get("resourceVersion")
                    self.written(ref.namespace, ref.name, str(version or ""))
                return True
            fresh = self.api.get(self.resource, ref.namespace, ref.name)
            if fresh is None or (fresh.get("metadata") or {}).get("uid") != ref.uid:
                return False
            resource_version = str(fresh["metadata"]["resourceVersion"])
            stored = fresh.get("status") or {}
        return False  # pragma: no cover - the loop returns or raises
