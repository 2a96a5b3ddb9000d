"""Creating an object under its deterministic name, and adopting it when it already exists.

Every name rollwise creates is derived from the service and revision, so a pass that crashed
after a create, or that read a watch cache not yet showing the object, meets AlreadyExists
(409) on its next create. That object is adopted only when its ownerReference names this
ProgressiveService's uid; anything else with the name is someone else's and never touched.
"""

from __future__ import annotations

from rollwise.adapters.errors import AdapterError, NotOwnedError
from rollwise.adapters.kubeapi import KubeApi, Resource
from rollwise.adapters.manifests.types import Manifest, ServiceRef, is_owned_by


class ObjectVanishedError(AdapterError):
    """The create answered AlreadyExists, and the object was gone when read right after."""

    def __init__(self, obj: str) -> None:
        super().__init__(obj, "exists and vanished again", transient=True)


def adopted(ref: ServiceRef, obj: str, existing: Manifest | None) -> Manifest:
    """`existing`, the object found under a name a create was refused for, if `ref` owns it."""
    if existing is None:
        raise ObjectVanishedError(obj)
    if not is_owned_by(existing, ref.uid):
        raise NotOwnedError(obj)
    return existing


def create_or_adopt(
    api: KubeApi, res: Resource, ref: ServiceRef, manifest: Manifest
) -> Manifest | None:
    """Create `manifest` for `ref`: None when created now, else the existing object it owns.

    Raises NotOwnedError when the name is taken by an object of someone else, and the transient
    ObjectVanishedError when the object that refused the create is gone when read."""
    try:
        api.create(res, ref.namespace, manifest)
        return None
    except AdapterError as err:
        if err.status != 409:
            raise
    name = str(manifest["metadata"]["name"])
    return adopted(ref, ref.child(res.kind, name), api.get(res, ref.namespace, name))
