"""The objects a ProgressiveService names and does not own, looked up so that a missing one is
caught when the spec is applied, not when the rollout reaches it: the route object of its
traffic router and the Secrets its webhooks and notifications take URLs and headers from.
(MetricGates are read with the gates; a workloadRef's Deployment with the workload.)"""

from __future__ import annotations

from rollwise.adapters.credentials import SECRETS
from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import HTTP_ROUTES, INGRESSES, VIRTUAL_SERVICES, KubeApi, Resource
from rollwise.api.service import ServiceSpec
from rollwise.core.secret_refs import secret_problem, secret_uses


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
    return _missing_route(api, namespace, spec) + missing_secrets(api, namespace, spec)


def missing_secrets(api: KubeApi, namespace: str, spec: ServiceSpec) -> tuple[str, ...]:
    """The Secrets (and keys) the spec's webhooks and notifications name that do not exist.
    Only the key names are looked at: no value is decoded or kept here."""
    keys: dict[str, frozenset[str] | str | None] = {}
    problems: list[str] = []
    for use in secret_uses(spec):
        if use.name not in keys:
            keys[use.name] = _secret_keys(api, namespace, use.name)
        held = keys[use.name]
        if isinstance(held, str):
            problems.append(f"Secret {namespace}/{use.name} ({use.field}) {held}")
            continue
        problem = secret_problem(use, namespace, held)
        if problem is not None:
            problems.append(problem)
    return tuple(problems)


def _secret_keys(api: KubeApi, namespace: str, name: str) -> frozenset[str] | str | None:
    """The Secret's keys; None when it does not exist; a sentence when it cannot be read."""
    try:
        secret = api.get(SECRETS, namespace, name)
    except AdapterError as err:
        if err.status == 403:
            return (
                "cannot be read: the operator may not get Secrets here (chart value "
                "secretRefs.enabled grants get on Secrets in the watched namespaces)"
            )
        raise
    if secret is None:
        return None
    return frozenset((secret.get("data") or {}).keys())


def _missing_route(api: KubeApi, namespace: str, spec: ServiceSpec) -> tuple[str, ...]:
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
