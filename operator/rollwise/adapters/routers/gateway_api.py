"""The gatewayAPI router: backendRefs weights in the user's HTTPRoute, and setMirror."""

from __future__ import annotations

from collections.abc import Sequence

from rollwise.adapters.adoption import create_or_adopt
from rollwise.adapters.errors import AdapterError, NotOwnedError
from rollwise.adapters.kubeapi import (
    HTTP_ROUTES,
    TRAEFIK_SERVICES,
    KubeApi,
)
from rollwise.adapters.manifests.builders import merge_patch
from rollwise.adapters.manifests.types import (
    ServiceRef,
    is_owned_by,
)
from rollwise.adapters.routers.httproute import (
    Backends,
    filter_mirror,
    httproute_rules,
    httproute_weight,
    service_mirror,
    service_mirror_refs,
    traefik_mirror_service,
    traefik_service_percent,
    unmirrored_rules,
)
from rollwise.adapters.routers.router import ROUTING_FIELD, RouterReading
from rollwise.adapters.routers.weights import patch_weights
from rollwise.api.routing import CanaryMatch
from rollwise.api.service import ServiceSpec
from rollwise.core.model import SetRouterWeight


class GatewayAPIRouter:
    """backendRefs weights on `<name>-stable` / `<name>-canary` in the user's HTTPRoute, and
    setMirror as a RequestMirror filter or through a TraefikService rollwise owns."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api

    def _route_name(self, spec: ServiceSpec) -> str:
        ref = spec.strategy.canary.traffic_routing.gateway_api
        assert ref is not None
        return ref.http_route

    def _matches(self, spec: ServiceSpec) -> Sequence[CanaryMatch]:
        ref = spec.strategy.canary.traffic_routing.gateway_api
        assert ref is not None
        return ref.canary_matches or ()

    def read_weight(self, ref: ServiceRef, spec: ServiceSpec) -> int | None:
        return self.read(ref, spec).weight

    def read(self, ref: ServiceRef, spec: ServiceSpec) -> RouterReading:
        route = self._api.get(HTTP_ROUTES, ref.namespace, self._route_name(spec))
        if route is None:
            return RouterReading(weight=None, mirror=None)
        b = Backends.of(ref, spec)
        rules = (route.get("spec") or {}).get("rules") or []
        base = {"spec": {"rules": unmirrored_rules(rules, b)}}
        weight = httproute_weight(base, b.stable, b.canary, self._matches(spec))
        filters, through = filter_mirror(rules, b), service_mirror_refs(rules, b)
        if b.mirror_with == "RequestMirror":
            return RouterReading(weight, filters if through is False else None)
        if filters != 0 or through is None:
            return RouterReading(weight, None)
        # The TraefikService is kept from the first pass on (with no mirror while not
        # mirroring): missing, foreign or edited, it reads as unknown and is written again.
        service = self._api.get(TRAEFIK_SERVICES, ref.namespace, b.mirror_service)
        return RouterReading(
            weight, service_mirror(through, traefik_service_percent(service, ref, b))
        )

    def set_weight(self, ref: ServiceRef, spec: ServiceSpec, action: SetRouterWeight) -> None:
        name = self._route_name(spec)
        b = Backends.of(ref, spec)
        field = f"{ROUTING_FIELD}.gatewayAPI.httpRoute"
        traefik = b.mirror_with == "TraefikService"
        route_mirror = action.mirror
        # Traefik loads the route (Gateway provider) and the TraefikService (CRD provider)
        # independently, and a route naming a service it has not loaded answers 404. So the
        # TraefikService is never deleted (at 0 it has no mirror; the garbage collector takes
        # it with the ProgressiveService), it exists long before a setMirror step (from the
        # first pass), and one created just now is pointed at only by a later pass.
        if traefik and action.mirror > 0 and self._ensure_mirror_service(ref, b, action.mirror):
            route_mirror = 0
        patch_weights(
            self._api,
            HTTP_ROUTES,
            ref,
            name,
            field,
            lambda route: {
                "rules": httproute_rules(
                    (route.get("spec") or {}).get("rules") or [],
                    b,
                    action.weight,
                    route_mirror,
                    self._matches(spec),
                )
            },
            fix=f"add a rule with backendRefs to Service {b.stable} (rollwise adds {b.canary})",
        )
        if traefik and action.mirror == 0:
            self._ensure_mirror_service(ref, b, 0)

    def _ensure_mirror_service(self, ref: ServiceRef, b: Backends, percent: int) -> bool:
        """The mirror TraefikService at `percent`; True when it was created just now."""
        wanted = traefik_mirror_service(ref, b, percent)
        obj = TRAEFIK_SERVICES.describe(ref.namespace, b.mirror_service)
        try:
            current = self._api.get(TRAEFIK_SERVICES, ref.namespace, b.mirror_service)
            if current is None:
                current = create_or_adopt(self._api, TRAEFIK_SERVICES, ref, wanted)
                if current is None:
                    return True
        except AdapterError as err:
            if err.status != 404:
                raise
            raise AdapterError(
                obj,
                "the TraefikService kind (traefik.io/v1alpha1) is not served",
                field=f"{ROUTING_FIELD}.gatewayAPI.mirrorWith",
                fix="install Traefik's CRDs and enable its kubernetesCRD provider, "
                "or use mirrorWith: RequestMirror",
            ) from err
        if not is_owned_by(current, ref.uid):
            raise NotOwnedError(obj)
        patch = merge_patch(current.get("spec") or {}, wanted["spec"])
        if patch:
            self._api.patch(TRAEFIK_SERVICES, ref.namespace, b.mirror_service, {"spec": patch})
        return False
