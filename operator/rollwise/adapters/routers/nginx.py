"""The nginx router: a canary Ingress rollwise owns beside the user's, with canary-weight."""

from __future__ import annotations

import copy

from rollwise.adapters.adoption import create_or_adopt
from rollwise.adapters.errors import AdapterError, NotOwnedError, ObjectMissingError
from rollwise.adapters.kubeapi import (
    INGRESSES,
    KubeApi,
)
from rollwise.adapters.manifests.builders import merge_patch
from rollwise.adapters.manifests.types import (
    Manifest,
    ServiceRef,
    is_owned_by,
    owner_reference,
    service_labels,
)
from rollwise.adapters.routers.router import ROUTING_FIELD, RouteError, RouterReading, stable_canary
from rollwise.api.service import ServiceSpec
from rollwise.core.model import SetRouterWeight

NGINX_CANARY = "nginx.ingress.kubernetes.io/canary"
NGINX_CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


# ----------------------------------------------------------------------------- nginx


def nginx_canary_name(ingress: str) -> str:
    return ingress[: 253 - len("-canary")] + "-canary"


def _rewrite_backend(backend: Manifest, stable: str, canary: str) -> tuple[Manifest, bool]:
    service = backend.get("service") or {}
    if service.get("name") != stable:
        return backend, False
    return {**backend, "service": {**service, "name": canary}}, True


def _copied_annotation(key: str) -> bool:
    """The user's ingress-nginx settings (rewrites, timeouts, ...) and class apply to the canary
    too; the user's own canary annotations never do."""
    if key == "kubernetes.io/ingress.class":
        return True
    return key.startswith("nginx.ingress.kubernetes.io/") and not key.startswith(NGINX_CANARY)


def nginx_canary_ingress(
    ref: ServiceRef, ingress: Manifest, stable: str, canary: str, weight: int
) -> Manifest:
    """A copy of the user's Ingress whose backends on `stable` point at `canary`, marked as an
    ingress-nginx canary with `weight`; owned by the ProgressiveService."""
    spec = ingress.get("spec") or {}
    found = False
    rules = []
    for rule in copy.deepcopy(spec.get("rules") or []):
        for path in (rule.get("http") or {}).get("paths") or []:
            path["backend"], hit = _rewrite_backend(path.get("backend") or {}, stable, canary)
            found = found or hit
        rules.append(rule)
    canary_spec: Manifest = {"rules": rules}
    if spec.get("ingressClassName"):
        canary_spec["ingressClassName"] = spec["ingressClassName"]
    if spec.get("defaultBackend"):
        canary_spec["defaultBackend"], hit = _rewrite_backend(
            spec["defaultBackend"], stable, canary
        )
        found = found or hit
    if not found:
        raise RouteError(f"no backend points at Service {stable}")
    metadata = ingress.get("metadata") or {}
    annotations = {
        k: v for k, v in (metadata.get("annotations") or {}).items() if _copied_annotation(k)
    }
    annotations[NGINX_CANARY] = "true"
    annotations[NGINX_CANARY_WEIGHT] = str(weight)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": nginx_canary_name(str(metadata.get("name"))),
            "namespace": ref.namespace,
            "labels": service_labels(ref.name),
            "annotations": annotations,
            "ownerReferences": [owner_reference(ref)],
        },
        "spec": canary_spec,
    }


def _nginx_patch(current: Manifest, wanted: Manifest) -> Manifest:
    """Only what rollwise owns: its labels and annotations, and the whole spec."""
    patch: Manifest = {}
    metadata = current.get("metadata") or {}
    meta_patch: Manifest = {}
    for key in ("labels", "annotations"):
        have = metadata.get(key) or {}
        diff = {k: v for k, v in wanted["metadata"][key].items() if have.get(k) != v}
        if diff:
            meta_patch[key] = diff
    if meta_patch:
        patch["metadata"] = meta_patch
    spec_patch = merge_patch(current.get("spec") or {}, wanted["spec"])
    if spec_patch:
        patch["spec"] = spec_patch
    return patch


class NginxRouter:
    """A canary Ingress beside the user's, with ingress-nginx's canary-weight annotation."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api

    def _ingress_name(self, spec: ServiceSpec) -> str:
        ref = spec.strategy.canary.traffic_routing.nginx
        assert ref is not None
        return ref.ingress

    def read_weight(self, ref: ServiceRef, spec: ServiceSpec) -> int | None:
        """The canary Ingress's weight, if it is ours and still a faithful copy of the user's
        Ingress (an edited user Ingress makes it None, so the copy is rewritten)."""
        name = self._ingress_name(spec)
        user = self._api.get(INGRESSES, ref.namespace, name)
        current = self._api.get(INGRESSES, ref.namespace, nginx_canary_name(name))
        if user is None or current is None or not is_owned_by(current, ref.uid):
            return None
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        try:
            weight = int(annotations.get(NGINX_CANARY_WEIGHT, ""))
        except ValueError:
            return None
        try:
            wanted = nginx_canary_ingress(ref, user, *stable_canary(ref.name), weight)
        except RouteError:
            return None
        return None if _nginx_patch(current, wanted) else weight

    def read(self, ref: ServiceRef, spec: ServiceSpec) -> RouterReading:
        return RouterReading(weight=self.read_weight(ref, spec))

    def set_weight(self, ref: ServiceRef, spec: ServiceSpec, action: SetRouterWeight) -> None:
        name = self._ingress_name(spec)
        field = f"{ROUTING_FIELD}.nginx.ingress"
        user = self._api.get(INGRESSES, ref.namespace, name)
        obj = INGRESSES.describe(ref.namespace, name)
        if user is None:
            raise ObjectMissingError(
                obj,
                "does not exist",
                field=field,
                fix=f"create it, or point {field} at an existing Ingress",
            )
        stable, canary = stable_canary(ref.name)
        try:
            wanted = nginx_canary_ingress(ref, user, stable, canary, action.weight)
        except RouteError as err:
            raise AdapterError(
                obj,
                str(err),
                field=field,
                fix=f"point the Ingress at Service {stable}; rollwise adds the canary Ingress",
            ) from err
        canary_name = wanted["metadata"]["name"]
        current = self._api.get(INGRESSES, ref.namespace, canary_name)
        if current is None:
            current = create_or_adopt(self._api, INGRESSES, ref, wanted)
            if current is None:
                return
        if not is_owned_by(current, ref.uid):
            raise NotOwnedError(ref.child("Ingress", canary_name))
        patch = _nginx_patch(current, wanted)
        if patch:
            self._api.patch(INGRESSES, ref.namespace, canary_name, patch)
