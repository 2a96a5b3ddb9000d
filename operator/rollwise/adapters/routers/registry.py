"""The router for a spec, keyed by `spec.strategy.canary.trafficRouting`'s one-of.

The dispatch is a `match` over RouterKind ending in `assert_never`: a new router kind in the API
is a mypy error here until it has its file and its case.
"""

from __future__ import annotations

from typing import assert_never

from rollwise.adapters.kubeapi import KubeApi
from rollwise.adapters.routers.gateway_api import GatewayAPIRouter
from rollwise.adapters.routers.istio import IstioRouter
from rollwise.adapters.routers.nginx import NginxRouter
from rollwise.adapters.routers.replicas import ReplicasRouter
from rollwise.adapters.routers.router import Router
from rollwise.api.routing import RouterKind
from rollwise.api.service import ServiceSpec


class RouterFactory:
    """One router per kind, keyed by `spec.strategy.canary.trafficRouting`'s one-of."""

    def __init__(self, api: KubeApi) -> None:
        self.replicas = ReplicasRouter()
        self.gateway_api = GatewayAPIRouter(api)
        self.nginx = NginxRouter(api)
        self.istio = IstioRouter(api)

    def for_spec(self, spec: ServiceSpec) -> Router:
        kind = spec.strategy.canary.traffic_routing.kind
        match kind:
            case RouterKind.REPLICAS:
                return self.replicas
            case RouterKind.GATEWAY_API:
                return self.gateway_api
            case RouterKind.NGINX:
                return self.nginx
            case RouterKind.ISTIO:
                return self.istio
            case _:
                assert_never(kind)
