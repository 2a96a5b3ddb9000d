"""The objects a ProgressiveService names and does not own, looked up so that a missing one is
caught when the spec is applied, not when the rollout reaches it: the route object of its
traffic router. (MetricGates are read with the gates; a workloadRef's Deployment with the
workload.)"""

from __future__ import annotations

from rollwise.adapters.kubeapi import HTTP_ROUTES, INGRESSES, VIRTUAL_SERVICES, KubeApi, Resource
from rollwise.api.service import ServiceSpec


def route_object(spec: ServiceSpec) -> tuple[Resource, str] | None:
    """The route object the traffic router writes to, or None (the replicas router)."""
    routing = spec.strategy.canary.traffic_routing
    if routing.gateway_api is not None:
        return HTTP_ROUTES, routing.gateway_api.http_route
    if routing.nginx is not None:
        return INGRESSES, routing.nginx.ingress
    if routing.istio is not None:
        return VIRTUAL_SERVICES, routing.istio.virtual_service
    return None


def missing_references(api: KubeApi, namespace: str, spec: ServiceSpec) -> tuple[str, ...]:
    """What the spec names that does not exist, each as a sentence a person can act on."""
    route = route_object(spec)
    if route is None:
        return ()
    resource, name = route
    if api.get(resource, namespace, name) is not None:
        return ()
    field = {
        HTTP_ROUTES: "gatewayAPI.httpRoute",
        INGRESSES: "nginx.ingress",
        VIRTUAL_SERVICES: "istio.virtualService",
    }[resource]
    return (
        f"{resource.kind} {namespace}/{name} (spec.strategy.canary.trafficRouting.{field}) "
        "does not exist",
    )
