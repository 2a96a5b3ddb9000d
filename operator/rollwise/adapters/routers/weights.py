"""Weight splitting shared by the routers that edit a user's route object (HTTPRoute rules,
VirtualService http routes): split, read back, and patch with the resourceVersion read.
"""

from __future__ import annotations

from typing import Any

from rollwise.adapters.errors import AdapterError, ObjectMissingError
from rollwise.adapters.kubeapi import (
    KubeApi,
)
from rollwise.adapters.manifests.types import (
    Manifest,
    ServiceRef,
)
from rollwise.adapters.routers.router import RouteError
from rollwise.core import naming

# ----------------------------------------------------------------------------- shared shape


def split_weights(
    groups: list[Manifest],
    key: str,
    matches: Any,
    stable: str,
    canary: str,
    weight: int,
    make_canary: Any,
) -> list[Manifest]:
    """Within every group (an HTTPRoute rule, a VirtualService http route) whose `key` list
    targets stable: stable gets 100-weight, canary gets weight (added when missing)."""
    out: list[Manifest] = []
    found = False
    for group in groups:
        targets = group.get(key) or []
        stable_target = next((t for t in targets if matches(t, stable)), None)
        if stable_target is None:
            out.append(group)
            continue
        found = True
        new_targets = []
        for target in targets:
            if matches(target, stable):
                new_targets.append({**target, "weight": 100 - weight})
            elif matches(target, canary):
                new_targets.append({**target, "weight": weight})
            else:
                new_targets.append(target)
        if not any(matches(t, canary) for t in targets):
            new_targets.append({**make_canary(stable_target), "weight": weight})
        out.append({**group, key: new_targets})
    if not found:
        raise RouteError(f"nothing routes to Service {stable}")
    return out


def weight_of(
    groups: list[Manifest], key: str, matches: Any, stable: str, canary: str, default: int
) -> int | None:
    """The canary weight when every group targeting stable splits stable/canary as 100-w / w."""
    seen: set[int] = set()
    for group in groups:
        targets = group.get(key) or []
        stable_target = next((t for t in targets if matches(t, stable)), None)
        if stable_target is None:
            continue
        canary_target = next((t for t in targets if matches(t, canary)), None)
        if canary_target is None:
            return None
        w = int(canary_target.get("weight", default))
        if int(stable_target.get("weight", default)) != 100 - w:
            return None
        seen.add(w)
    return seen.pop() if len(seen) == 1 else None


def patch_weights(
    api: KubeApi,
    res: Any,
    ref: ServiceRef,
    name: str,
    field: str,
    new_spec: Any,
    fix: str,
) -> None:
    """Read the user's route object, compute its weighted spec part and patch it with the
    resourceVersion read, so a concurrent edit by its owner is retried, never overwritten."""
    obj = res.describe(ref.namespace, name)
    for attempt in (1, 2):
        current = api.get(res, ref.namespace, name)
        if current is None:
            raise ObjectMissingError(
                obj,
                "does not exist",
                field=field,
                fix=f"create it, or point {field} at an existing {res.kind}",
            )
        try:
            wanted = new_spec(current)
        except RouteError as err:
            raise AdapterError(obj, str(err), field=field, fix=fix) from err
        spec = current.get("spec") or {}
        labels = (current.get("metadata") or {}).get("labels") or {}
        labelled = labels.get(naming.LABEL_ROUTE_OF) == ref.name
        if labelled and all(spec.get(k) == v for k, v in wanted.items()):
            return
        # The label makes the route's own watch wake this service on any change to it.
        body = {
            "metadata": {
                "resourceVersion": current["metadata"]["resourceVersion"],
                "labels": {naming.LABEL_ROUTE_OF: ref.name},
            },
            "spec": wanted,
        }
        try:
            api.patch(res, ref.namespace, name, body)
            return
        except AdapterError as err:
            if err.status != 409 or attempt == 2:
                raise
